package fragment_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialect/postgres"
	"github.com/schemashift/schemashift/internal/dialect/sqlite"
	"github.com/schemashift/schemashift/internal/fragment"
)

var (
	pgOnly     = []dialect.Rendering{postgres.Dialect{}}
	sqliteOnly = []dialect.Rendering{sqlite.Dialect{}}
	both       = []dialect.Rendering{postgres.Dialect{}, sqlite.Dialect{}}
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
		assert.Empty(t, fragment.Expression(e, both), e)
	}
}

// What only SQLite reads otherwise is refused only where SQLite reads
// it: PostgreSQL's arrays of strings, jsonb's ? operators and array
// slices are PostgreSQL's own, and read the same by its lexer and by it.
func TestExpressionIsReadAsItsDatabaseReadsIt(t *testing.T) {
	for _, e := range []string{
		"ARRAY['USD', 'EUR']",
		"data ? 'email'",
		"tags <@ARRAY['a']",
		"(tags)[1:2]",
		"x @@to_tsquery('q')",
	} {
		assert.Empty(t, fragment.Expression(e, pgOnly), e)
		assert.NotEmpty(t, fragment.Expression(e, both), e)
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
		"a], b[":                 "closes a ] it did not open",
		"a, b":                   "holds a ',' outside parentheses: a list of expressions, not one",
		"'x'), email = ('taken'": "closes a ) it did not open",
		"$$'$$) -- '":            "holds the string $$'$$: only plain '…' strings are taken",
		"a -- b":                 "holds a comment",
		"$1":                     "holds a parameter",
		"x$1 + 1":                `holds a $ in "x$1" (a driver that puts parameters in on the client may read a parameter or a dollar quote there)`,
		// pgx's simple protocol opens a dollar quote at a$b$ and puts a
		// key value in at the $1 PostgreSQL reads inside a string.
		"(SELECT email AS a$b$) || '$b$ $1 $c$' || (SELECT 1 AS a$c$)": `holds a $ in "a$b$" (a driver that puts parameters in on the client may read a parameter or a dollar quote there)`,
	} {
		assert.Equal(t, why, fragment.Expression(e, pgOnly), "%q", e)
	}
	for e, why := range map[string]string{
		// SQLite reads $a(') as a parameter's name, then the rest as
		// code: ) WHERE 1=1, and a comment.
		"$a(')) WHERE 1=1 -- ')":  `holds "$a" (SQLite reads it as a parameter)`,
		"lower(email) || $abc":    `holds "$a" (SQLite reads it as a parameter)`,
		"lower(email) || ?":       "holds a '?' (SQLite reads it as a parameter)",
		"@::a(')) WHERE 1=1 --')": `holds "@:" (SQLite reads it as a parameter)`,
		"$::a(')) WHERE 1=1 --')": `holds "$:" (SQLite reads it as a parameter)`,
		"x['k']":                  "holds a string or a quoted name between [ and ] (SQLite reads [ … ] as a name, whatever it holds)",
		"x[1":                     "holds a [ without its ] (SQLite reads [ … ] as a name)",
	} {
		assert.Equal(t, why, fragment.Expression(e, sqliteOnly), "%q", e)
		assert.NotEmpty(t, fragment.Expression(e, both), "%q", e)
	}
}
