package backfill_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
)

func TestVerifyCatchesRowChangedBehindTheBackfillAndRepairFixesIt(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db, 4000)
		b := mustNew(t, db, emailJob("v"), backfill.WithChunkSize(1000, 100, 5000))
		_, err := b.Run(t.Context())
		require.NoError(t, err)

		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 700})
		require.NoError(t, err)
		assert.True(t, rep.Passed())
		assert.Equal(t, int64(4000), rep.Compared)
		assert.GreaterOrEqual(t, rep.Chunks, 5)

		// An old-path writer that skipped the new column.
		db.MustExecContext(t.Context(), `UPDATE users SET email = 'Changed@Example.COM' WHERE id IN (300, 9000)`)
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 700, Sensitive: []string{"email_lower"}})
		require.NoError(t, err)
		assert.False(t, rep.Passed())
		assert.Equal(t, int64(2), rep.Divergent)
		require.Len(t, rep.Diverged, 2)
		assert.Equal(t, backfill.Key{"300"}, rep.Diverged[0].Key)
		assert.Equal(t, backfill.Key{"9000"}, rep.Diverged[1].Key)
		assert.Equal(t, []backfill.Field{{Column: "email_lower", Want: backfill.Redacted, Got: backfill.Redacted}}, rep.Diverged[0].Fields)
		st, err := b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "failed", st.Verify, "a failed verification shows in the job's state")
		assert.Equal(t, int64(2), st.Divergent)

		// With planner statistics the chunk bounds come from the key histogram:
		// the same rows are found.
		db.MustExecContext(t.Context(), `ANALYZE users`)
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 700})
		require.NoError(t, err)
		assert.Equal(t, int64(4000), rep.Compared)
		assert.Equal(t, int64(2), rep.Divergent)
		assert.GreaterOrEqual(t, rep.Chunks, 4)

		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{Repair: true})
		require.NoError(t, err)
		assert.Equal(t, int64(2), rep.Repaired)
		assert.Zero(t, rep.Remaining)
		assert.True(t, rep.Passed())
		assert.Equal(t, 0, divergent(t, db))
		st, err = b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "repaired", st.Verify, "a verification that repaired rows is not the one the gate counts")
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{})
		require.NoError(t, err)
		assert.True(t, rep.Passed())
		st, err = b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "passed", st.Verify)

		// Values are shown when not sensitive.
		db.MustExecContext(t.Context(), `UPDATE users SET email_lower = 'stale' WHERE id = 3`)
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{})
		require.NoError(t, err)
		require.Len(t, rep.Diverged, 1)
		assert.Equal(t, []backfill.Field{{Column: "email_lower", Want: "user1@example.com", Got: "stale"}}, rep.Diverged[0].Fields)
	})
}

func TestVerifyIntoBisectsToDivergentRows(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ordersTables(t, db, 5000, 2, 1)
		job := backfill.Job{Name: "move", Table: "orders", Into: &backfill.Into{Table: "order_totals", Key: []string{"order_id"},
			Columns: []backfill.Assign{{Column: "order_id", Expr: "id"}, {Column: "amount", Expr: "amount_cents / 100.0"}, {Column: "currency", Expr: "'USD'"}}},
			Derived: true}
		b := mustNew(t, db, job, backfill.WithChunkSize(1000, 100, 5000))
		_, err := b.Run(t.Context())
		require.NoError(t, err)

		db.MustExecContext(t.Context(), `UPDATE order_totals SET amount = 0 WHERE order_id = 2468`)           // changed
		db.MustExecContext(t.Context(), `DELETE FROM order_totals WHERE order_id = 8000`)                     // lost
		db.MustExecContext(t.Context(), `INSERT INTO order_totals VALUES (8001, 1, 'USD')`)                   // orphan
		db.MustExecContext(t.Context(), `UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = 10000`) // old path only

		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 2000})
		require.NoError(t, err)
		assert.Equal(t, int64(4), rep.Divergent)
		var keys []string
		for _, d := range rep.Diverged {
			keys = append(keys, d.Key[0])
		}
		assert.Equal(t, []string{"2468", "8000", "8001", "10000"}, keys)
		var kinds []backfill.Kind
		for _, d := range rep.Diverged {
			kinds = append(kinds, d.Kind)
		}
		assert.Equal(t, []backfill.Kind{backfill.Drifted, backfill.Unfilled, backfill.Orphan, backfill.Drifted}, kinds)
		assert.Equal(t, [4]int64{1, 2, 0, 1}, [4]int64{rep.Unfilled, rep.Drifted, rep.Unverified, rep.Orphans})
		assert.Equal(t, "(order_id, amount, currency)", rep.Diverged[0].Fields[0].Column)
		assert.Equal(t, "(2468,12.34,USD)", rep.Diverged[0].Fields[0].Want)
		assert.Equal(t, "NULL", rep.Diverged[1].Fields[0].Got, "the lost row")
		assert.Equal(t, "NULL", rep.Diverged[2].Fields[0].Want, "the orphan")
		if isSQLite(db) {
			// Compared row by row in one pass: nothing to bisect. SQLite keeps
			// numbers as numbers, without a scale.
			assert.Equal(t, 3, rep.Chunks, "5000 rows in comparisons of 2000")
			assert.Equal(t, "(2468,0,USD)", rep.Diverged[0].Fields[0].Got)
			assert.Equal(t, "(8000,40.0,USD)", rep.Diverged[1].Fields[0].Want)
		} else {
			assert.Greater(t, rep.Chunks, 3, "the differing chunks were bisected")
			assert.Equal(t, "(2468,0.00,USD)", rep.Diverged[0].Fields[0].Got)
			assert.Equal(t, "(8000,40.00,USD)", rep.Diverged[1].Fields[0].Want)
		}

		// Repair rewrites what the source has; the orphan has no source row and stays.
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 2000, Repair: true})
		require.NoError(t, err)
		assert.Equal(t, int64(3), rep.Repaired)
		assert.Equal(t, int64(1), rep.Remaining)
		assert.False(t, rep.Passed())
		st, err := b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "failed", st.Verify)
		assert.Equal(t, int64(1), st.Divergent, "the orphan")
	})
}
