package main

import (
	"encoding/json"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
)

// `backfill estimate` predicts each job from a sample rolled back: before
// the expand its columns are missing and it says so; after, it prints a
// line per job (or JSON), and the table holds nothing it did.
func TestCLIBackfillEstimate(t *testing.T) {
	t.Parallel()
	for name, setup := range map[string]func(*testing.T) (string, *sqlx.DB){"postgres": setup, "sqlite": setupSQLite} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, db := setup(t)
			r := cliRun(t, url, "backfill", "estimate", "users_split_name")
			assert.NotEqual(t, 0, r.code, "before the expand: no columns to fill")
			assert.Contains(t, r.stderr, "given_name")

			r = cliRun(t, url, "advance", "users_split_name", "--reason", "expand")
			require.Equal(t, 0, r.code, r.stderr)
			r = cliRun(t, url, "backfill", "estimate", "users_split_name", "--samples", "3", "--rate", "1000")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "users_split_name: 3000 rows to walk, about ")
			assert.Contains(t, r.stdout, "at rate limit 1000 rows/s")
			assert.Contains(t, r.stdout, "dead tuples")

			r = cliRun(t, url, "backfill", "estimate", "users_split_name", "--json")
			require.Equal(t, 0, r.code, r.stderr)
			var es []backfill.Estimate
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &es))
			require.Len(t, es, 1)
			assert.True(t, es[0].SampleChunks >= 1 && es[0].SampleChunks <= 5, "five samples, fewer when they reach the table's end: %d", es[0].SampleChunks)
			assert.Equal(t, es[0].SampleRows, es[0].SampleChanged)
			assert.Equal(t, name == "sqlite", es[0].WALBytes == -1)

			var filled int
			require.NoError(t, db.GetContext(t.Context(), &filled, `SELECT count(*) FROM users WHERE given_name IS NOT NULL`))
			assert.Zero(t, filled, "the samples were rolled back")
			r = cliRun(t, url, "backfill", "estimate", "users_split_name", "--samples", "0")
			assert.Equal(t, 2, r.code)
			r = cliRun(t, url, "backfill", "estimate", "users_split_name", "--window", "25:00-26:00 UTC")
			assert.Equal(t, 2, r.code, "a window that does not parse is bad input")
			r = cliRun(t, url, "backfill", "estimate", "users_split_name", "--window", "01:00-05:00 UTC")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "inside its run windows, done by ")
		})
	}
}
