package backfill_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/rollouttest"
)

// State and StateAt take any of the four handles; in a transaction they
// read what it sees, its own uncommitted pause included.
func TestStateTakesEveryDB(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		usersTable(t, db, 10)
		_, err := backfill.New(ctx, db, emailJob("state"), quick()...)
		require.NoError(t, err)
		for _, h := range rollouttest.Handles() {
			q, end := h.Open(t, db)
			p, err := backfill.State(ctx, q, "state")
			require.NoError(t, err, h.Name)
			assert.Equal(t, backfill.Running, p.Status, h.Name)
			p, err = backfill.StateAt(ctx, q, "state", time.Now())
			require.NoError(t, err, h.Name)
			assert.Equal(t, backfill.Running, p.Status, h.Name)
			_, err = backfill.State(ctx, q, "no such job")
			require.ErrorIs(t, err, backfill.ErrUnknownJob, h.Name)
			if h.Tx {
				require.NoError(t, backfill.Pause(ctx, q, "state"))
				p, err := backfill.State(ctx, q, "state")
				require.NoError(t, err, h.Name)
				assert.Equal(t, backfill.Paused, p.Status, "%s: the read sees the transaction's pause", h.Name)
			}
			end(false)
			p, err = backfill.State(ctx, db, "state")
			require.NoError(t, err)
			assert.Equal(t, backfill.Running, p.Status, "%s rolled back", h.Name)
		}
	})
}

// A pool of no supported database is refused, never read as PostgreSQL.
func TestStateOfUnknownDriver(t *testing.T) {
	t.Parallel()
	_, err := backfill.State(t.Context(), rollouttest.UnknownPool(t), "job")
	require.ErrorIs(t, err, dialects.ErrUnknownDriver)
	assert.True(t, strings.HasPrefix(err.Error(), "read backfill state:"), err.Error())
}
