// Package ledgerflag serves each migration's stage from the ledger to
// OpenFeature: [Provider] is the default source of stages, so that
// advancing a migration in the ledger changes what every instance
// evaluates within one poll interval. Flag keys are migration names.
//
// Give it to an isolated OpenFeature API (never the global one), which
// starts and stops its polling; rollout.Start does that for a service
// unless given the team's own flag client:
//
//	p, err := ledgerflag.New(db, 2*time.Second)
//	api := isolated.NewAPI()
//	err = api.SetProviderAndWait(ctx, p)
//	ev, err := flags.NewEvaluator(api.NewClient())
//
// It polls a [Pool], *sql.DB or *sqlx.DB, both safe for concurrent use:
// the provider holds it until closed, and the caller closes the pool
// after the provider. A pool of no supported database fails its first
// read, so the provider's Init.
//
// When the ledger cannot be read, the provider keeps serving the stages it
// read last and goes stale ([Provider.Stale]); a stage this build does not
// know is served as the ledger spells it, and the flag's evaluation falls
// back.
package ledgerflag
