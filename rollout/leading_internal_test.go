package rollout

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A check's first word is the one both databases read first, or none.
func TestLeadingWordIsReadAsBothDatabasesReadIt(t *testing.T) {
	for q, want := range map[string]string{
		"SELECT 1":                         "select",
		"  (WITH x AS (SELECT 1) TABLE x)": "with",
		"-- a comment\nSELECT 1":           "select",
		"-- a comment\r\nSELECT 1":         "select",
		"/* a comment */ VALUES (1)":       "values",
		"/**/SELECT 1":                     "select",
		"-- x\rCOMMIT":                     "", // PostgreSQL: COMMIT; SQLite: a comment
		"/* /* */ SELECT */ COMMIT":        "", // PostgreSQL nests comments
		"/* a /*/ SELECT */ COMMIT":        "",
		"/*/ SELECT */ COMMIT":             "commit",
		"/* unterminated":                  "",
		"-- only a comment":                "",
	} {
		assert.Equal(t, want, leadingWord(q), "%q", q)
	}
}
