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

// The quickstart runs the whole rollout to the end, against a real
// PostgreSQL and against embedded SQLite, and asserts its own summary:
// every gate passed in order, no row lost, no request failed.
func TestQuickstart(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		t.Setenv("DATABASE_URL", pgtest.URL(t))
		testQuickstart(t, settings{db: "postgres", pace: 1})
	})
	t.Run("sqlite", func(t *testing.T) { testQuickstart(t, settings{db: "sqlite", pace: sqlitePace}) })
}

func testQuickstart(t *testing.T, set settings) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, set), out.String())
	text := out.String()
	t.Log(text)

	summary := text[strings.Index(text, "Summary"):]
	var order []string
	for _, m := range regexp.MustCompile(`(?m)^(\w+)\s+(\w+)\s+(expand|schema|fleet at \w+|backfill done|verification passed|shadow consistency|fleet only complete|step back)\s`).FindAllStringSubmatch(summary, -1) {
		order = append(order, m[1]+"→"+m[2])
	}
	assert.Equal(t, []string{"planned→expanded", "expanded→dualwrite", "dualwrite→backfill", "backfill→verify", "verify→shadow",
		"shadow→verify", "verify→shadow", "shadow→live", "live→rampdown", "rampdown→complete", "complete→contracted"}, order, "every gate, in order")
	assert.Regexp(t, `backfill +verify +backfill done .* 1\d{5} rows in \d+ chunks`, summary)
	assert.Regexp(t, `verify +shadow +verification passed .* 0 divergent`, summary)
	assert.Regexp(t, `shadow +verify +step back .*legacy job caught: [1-9]\d* mismatches .*; repair fixed 100 rows`, summary)
	assert.Regexp(t, `rows: (\d+) expected, (\d+) present, 0 lost; 0 without the new shape; schema fits the contracted build: true`, text)
	assert.Regexp(t, `traffic: [1-9]\d* reads, [1-9]\d* writes \([1-9]\d* new users\), 0 errors`, text)
	assert.Regexp(t, `new-path writes of multi-word names: [1-9]\d* intact, 0 overwritten`, text)
	assert.Contains(t, text, "0 rows lost; every gate passed in order.")
}
