package main

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The example runs the move to the end on each database and asserts its
// own output: verification found nothing divergent, every gate passed in
// order, no order lost and no request failed. The two runs spend most of
// their time waiting for gates, so they run side by side.
func TestOrderTotals(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.URL(t)) // for -db postgres; -db sqlite ignores it
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		text := testOrderTotals(t, "postgres")
		assert.Contains(t, text, "compared with order_totals by checksum, 0 divergent")
		assert.NotContains(t, text, "note:")
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		text := testOrderTotals(t, "sqlite")
		assert.Contains(t, text, "compared with order_totals row by row, 0 divergent")
		assert.Contains(t, text, "note: "+noteNullable)
		assert.Contains(t, text, "note: "+noteAmount)
		assert.Regexp(t, `note: up orders_move_amount:contract: sqlite: DROP COLUMN rewrites the table`, text)
	})
}

func testOrderTotals(t *testing.T, which string) string {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, which), out.String())
	text := out.String()
	t.Log(text)

	var order []string
	for _, m := range regexp.MustCompile(`(?m)^(\w+)\s+→ (\w+)\s+\(`).FindAllStringSubmatch(text, -1) {
		order = append(order, m[1]+"→"+m[2])
	}
	assert.Equal(t, []string{"planned→expanded", "expanded→dualwrite", "dualwrite→backfill", "backfill→verify", "verify→shadow",
		"shadow→live", "live→rampdown", "rampdown→complete", "complete→contracted"}, order, "every gate, in order")
	m := regexp.MustCompile(`backfill: (\d+) orders walked, (\d+) moved to order_totals in [1-9]\d* chunks`).FindStringSubmatch(text)
	require.NotNil(t, m, "a backfill line")
	moved, _ := strconv.Atoi(m[1])
	assert.GreaterOrEqual(t, moved, orders, "every seeded order walked")
	filled, _ := strconv.Atoi(m[2])
	assert.Positive(t, filled)
	assert.LessOrEqual(t, filled, moved)
	m = regexp.MustCompile(`verify: (\d+) orders compared`).FindStringSubmatch(text)
	require.NotNil(t, m, "a verify line")
	compared, _ := strconv.Atoi(m[1])
	assert.GreaterOrEqual(t, compared, moved, "every moved order verified")
	m = regexp.MustCompile(`orders: (\d+) expected, (\d+) present, (\d+) with their total; 0 failed requests`).FindStringSubmatch(text)
	require.NotNil(t, m, "a totals line")
	assert.Equal(t, m[1], m[2], "no order lost")
	assert.Equal(t, m[1], m[3], "every order has its total")
	assert.Contains(t, text, "0 orders lost; amount_cents dropped.")
	return text
}
