package backfill_test

import (
	"errors"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/rollouttest"
)

// EnsureSchema, Pause, Resume and Cancel take any of the four: given a
// transaction, what they write is written in it, there when it commits
// and gone when it rolls back.
func TestControlTakesEveryDB(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		for _, h := range rollouttest.Handles() {
			if !h.Tx {
				continue
			}
			q, end := h.Open(t, db)
			require.NoError(t, backfill.EnsureSchema(ctx, q), h.Name)
			end(false)
			exists := tableExists(t, db, "schemashift_backfills")
			assert.False(t, exists, "%s rolled back: no tables", h.Name)
		}
		for i, h := range rollouttest.Handles() {
			q, end := h.Open(t, db)
			require.NoError(t, backfill.EnsureSchema(ctx, q), h.Name)
			end(true)
			assert.True(t, tableExists(t, db, "schemashift_backfills"), "%s (%d)", h.Name, i)
		}

		usersTable(t, db, 30)
		b, err := backfill.New(ctx, db.DB, emailJob("any-db"), quick()...)
		require.NoError(t, err, "New takes a *sql.DB")
		status := func() backfill.Status {
			p, err := b.State(ctx)
			require.NoError(t, err)
			return p.Status
		}
		require.Equal(t, backfill.Running, status())
		for _, h := range rollouttest.Handles() {
			if h.Tx {
				q, end := h.Open(t, db)
				require.NoError(t, backfill.Pause(ctx, q, "any-db"), h.Name)
				end(false)
				assert.Equal(t, backfill.Running, status(), "%s rolled back: the pause is gone", h.Name)
			}
			q, end := h.Open(t, db)
			require.NoError(t, backfill.Pause(ctx, q, "any-db"), h.Name)
			end(true)
			assert.Equal(t, backfill.Paused, status(), h.Name)
			q, end = h.Open(t, db)
			require.NoError(t, backfill.Cancel(ctx, q, "any-db"), h.Name)
			end(true)
			assert.Equal(t, backfill.Cancelled, status(), h.Name)
			q, end = h.Open(t, db)
			require.NoError(t, backfill.Resume(ctx, q, "any-db"), h.Name)
			end(true)
			assert.Equal(t, backfill.Running, status(), h.Name)
		}
		p, err := b.Run(ctx)
		require.NoError(t, err)
		assert.Equal(t, backfill.Done, p.Status)
		assert.Zero(t, divergent(t, db))
	})
}

func tableExists(t *testing.T, db *sqlx.DB, table string) bool {
	t.Helper()
	ok, err := dbtest.Dialect(t, db).TableExists(t.Context(), db, ident.Table{Name: table})
	require.NoError(t, err)
	return ok
}

// New and ReplicationLag take a *sql.DB as they take a *sqlx.DB; a pool
// of no supported database is refused, never taken for PostgreSQL.
func TestPoolsOfEitherPackage(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		usersTable(t, db, 10)
		for _, pool := range []backfill.Pool{db, db.DB} {
			_, err := backfill.New(ctx, pool, emailJob("lag"), append(quick(), backfill.WithSignals(backfill.ReplicationLag(pool, 0)))...)
			if dbtest.IsSQLite(t, db) {
				require.ErrorIs(t, err, errors.ErrUnsupported, "%T", pool)
				continue
			}
			require.NoError(t, err, "%T", pool)
			got, err := backfill.ReplicationLag(pool, 0).Throttle(ctx)
			require.NoError(t, err)
			assert.Zero(t, got.Wait, "no replicas")
		}
	})
}
