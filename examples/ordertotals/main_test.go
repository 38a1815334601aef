package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestOrderTotals(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.URL(t))
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out), out.String())
	text := out.String()
	t.Log(text)
	assert.Regexp(t, `verify: \d+ orders compared with order_totals by checksum, 0 divergent`, text)
	assert.Contains(t, text, "complete   → contracted")
	assert.Contains(t, text, "0 orders lost; amount_cents dropped.")
}
