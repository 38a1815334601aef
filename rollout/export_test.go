package rollout

// DefinitionHash is the definition hash Register records for p.
func DefinitionHash(p Plan) (string, error) {
	p.defaults() // as Normalize leaves it, without refusing what is invalid
	return p.DefinitionHash()
}

// LegacyHash is the definition hash builds before the versioned form
// recorded for p.
func LegacyHash(p Plan) (string, error) {
	p.defaults()
	return p.legacyHash(), nil
}
