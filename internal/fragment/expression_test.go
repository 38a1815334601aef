package fragment_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/schemashift/schemashift/internal/fragment"
)

func TestExpressionTakesOneExpression(t *testing.T) {
	for _, e := range []string{
		"lower(email)",
		"coalesce(a, b)",
		"split_part(full_name, ' ', 1)",
		"CASE WHEN a > 0 THEN 'x, y)' ELSE 'it''s' END",
		"(tags)[1]",
		"(SELECT max(x) FROM t WHERE t.id = id)",
		`"Mixed Case" || 'x'`,
		"amount::numeric(12, 2) / 100",
	} {
		assert.Empty(t, fragment.Expression(e), e)
	}
}

func TestExpressionRefusesWhatLeavesItsParentheses(t *testing.T) {
	for e, why := range map[string]string{
		"":                       "is empty",
		"  ":                     "is empty",
		"a)":                     "closes a ) it did not open",
		"x) WHERE (true":         "closes a ) it did not open",
		"(a":                     "leaves a parenthesis or a bracket open",
		"(a]":                    "closes a ] it did not open",
		"a], b[":                 "holds a [ without its ]",
		"a, b":                   "holds a ',' outside parentheses: a list of expressions, not one",
		"'x'), email = ('taken'": "closes a ) it did not open",
		"$$'$$) -- '":            "holds the string $$'$$: only plain '…' strings are taken",
		"a -- b":                 "holds a comment",
		"$1":                     "holds a parameter",
	} {
		assert.Equal(t, why, fragment.Expression(e), "%q", e)
	}
}
