package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The quickstart runs to the end against a real PostgreSQL and tells the
// truth about each stage.
func TestQuickstart(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.URL(t))
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out), out.String())
	text := out.String()
	t.Log(text)

	line := func(stage string) string {
		m := regexp.MustCompile(`(?m)^` + stage + ` .*$`).FindString(text)
		require.NotEmpty(t, m, "no line for %s", stage)
		return m
	}
	assert.Regexp(t, `old \d+, new 0 +old \d+ +- +-$`, line("off"))
	assert.Regexp(t, `old \d+, new 0 +old \d+, new \(2nd\) \d+ +- +-$`, line("dualwrite"))
	assert.Regexp(t, `old \d+, new 0 +old \d+, new \(2nd\) \d+ +old 0, new \d+ +\d+ match, [1-9]\d* mismatch`, line("shadow"),
		"the legacy job's rows are caught")
	assert.Regexp(t, `old 0, new \d+ +new \d+, old \(2nd\) \d+ +old \d+, new 0 +\d+ match, 0 mismatch`, line("live"),
		"after the repair, old and new agree")
	assert.Regexp(t, `old 0, new \d+ +new \d+, old \(2nd\) \d+ +- +-$`, line("rampdown"))
	assert.Regexp(t, `old 0, new \d+ +new \d+ +- +-$`, line("complete"))
	assert.Regexp(t, `backfill: 1\d{3} rows walked in \d+ chunks, \d+ given their new shape`, text)
	assert.Regexp(t, `verify: 1\d{3} rows compared, 0 divergent`, text)
	assert.Regexp(t, `verify: [1-9]\d* divergent row\(s\) the legacy job changed; repair re-derived [1-9]\d*, 0 left`, text)
	assert.Regexp(t, `verify: 0 of \d+ rows disagree`, text)
	assert.True(t, strings.Contains(text, `mismatch: GivenName: old="`), "mismatches are shown field by field")
}
