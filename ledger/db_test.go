package ledger_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
)

var at = time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)

// Every function of the ledger takes any of the four handles: given a
// transaction, what it writes is there when the transaction commits and
// gone when it rolls back, and what it reads is what the transaction
// sees.
func TestEveryHandle(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		for _, h := range rollouttest.Handles() {
			if !h.Tx {
				continue
			}
			q, end := h.Open(t, db)
			require.NoError(t, ledger.Ensure(ctx, q), h.Name)
			end(false)
			assert.False(t, tableExists(t, db, "schemashift_migrations"), "%s rolled back: no ledger", h.Name)
		}
		for _, h := range rollouttest.Handles() {
			q, end := h.Open(t, db)
			require.NoError(t, ledger.Ensure(ctx, q), h.Name)
			end(true)
			require.True(t, tableExists(t, db, "schemashift_migrations"), h.Name)
		}

		for _, h := range rollouttest.Handles() {
			m := "m_" + h.Name
			def := ledger.Definition{Migration: m, Hash: "h-" + h.Name, Document: []byte(`"` + m + `"`)}
			if h.Tx {
				q, end := h.Open(t, db)
				added, err := ledger.Add(ctx, q, def, at)
				require.NoError(t, err, h.Name)
				require.True(t, added, h.Name)
				got, err := ledger.Get(ctx, q, m)
				require.NoError(t, err, "%s: the transaction sees its own row", h.Name)
				assert.Equal(t, ledger.Planned, got.Phase)
				end(false)
				_, err = ledger.Get(ctx, db, m)
				require.ErrorIs(t, err, ledger.ErrUnknownMigration, "%s rolled back: no row", h.Name)
			}
			q, end := h.Open(t, db)
			added, err := ledger.Add(ctx, q, def, at)
			require.NoError(t, err, h.Name)
			require.True(t, added, h.Name)
			end(true)

			// The reads.
			q, end = h.Open(t, db)
			row, err := ledger.Read(ctx, q, m)
			require.NoError(t, err, h.Name)
			assert.Equal(t, ledger.Planned, row.Phase, h.Name)
			assert.True(t, row.PhaseSince.Equal(at), h.Name)
			st, err := ledger.Get(ctx, q, m)
			require.NoError(t, err, h.Name)
			assert.Equal(t, row.Status, st, h.Name)
			list, err := ledger.List(ctx, q)
			require.NoError(t, err, h.Name)
			assert.Contains(t, list, st, h.Name)
			trail, err := ledger.Audit(ctx, q, m, 10)
			require.NoError(t, err, h.Name)
			require.Len(t, trail, 1, h.Name)
			assert.Equal(t, "register", trail[0].Kind, h.Name)
			got, err := ledger.ReadDefinition(ctx, q, m)
			require.NoError(t, err, h.Name)
			assert.Equal(t, def, got, h.Name)
			defs, err := ledger.Definitions(ctx, q)
			require.NoError(t, err, h.Name)
			assert.Contains(t, defs, def, h.Name)
			stages, err := ledger.Stages(ctx, q)
			require.NoError(t, err, h.Name)
			assert.Equal(t, "off", stages[m], h.Name)
			begun, _, err := ledger.ContractBegun(ctx, q, ledger.Status{Migration: m, Phase: ledger.Complete, Version: 1, PhaseSince: at})
			require.NoError(t, err, h.Name)
			assert.False(t, begun, h.Name)
			end(true)

			// The writes: an event, a trip, a move. Lock and Set take only a
			// transaction: on a pool Lock would lock nothing, and Set could
			// commit the move without its event.
			write := func(q ledger.DB) {
				require.NoError(t, ledger.Record(ctx, q, ledger.Event{Migration: m, Kind: "note", Accepted: true, Actor: "t", At: at}), h.Name)
				require.NoError(t, ledger.Trip(ctx, q, m, "tripped by "+h.Name), h.Name)
				tx := q
				if !h.Tx {
					_, err := ledger.Lock(ctx, q, m)
					require.ErrorIs(t, err, ledger.ErrInvalidArgument, "%s: Lock on a pool", h.Name)
					_, err = ledger.Set(ctx, q, ledger.Move{From: ledger.Status{Migration: m, Version: 1}, To: ledger.Expanded, Kind: "advance", Actor: "t", At: at})
					require.ErrorIs(t, err, ledger.ErrInvalidArgument, "%s: Set on a pool", h.Name)
					own, err := db.BeginTxx(ctx, nil)
					require.NoError(t, err)
					defer func() { require.NoError(t, own.Commit()) }()
					tx = own
				}
				from, err := ledger.Lock(ctx, tx, m)
				require.NoError(t, err, h.Name)
				next, err := ledger.Set(ctx, tx, ledger.Move{From: from.Status, To: ledger.Expanded, Tripped: from.Tripped,
					Kind: "advance", Actor: "t", At: at.Add(time.Second)})
				require.NoError(t, err, h.Name)
				assert.Equal(t, ledger.Expanded, next.Phase, h.Name)
			}
			if h.Tx {
				q, end := h.Open(t, db)
				write(q)
				end(false)
				row, err := ledger.Read(ctx, db, m)
				require.NoError(t, err)
				assert.Equal(t, ledger.Planned, row.Phase, "%s rolled back: no move", h.Name)
				assert.Empty(t, row.Tripped, "%s rolled back: no trip", h.Name)
				trail, err := ledger.Audit(ctx, db, m, 10)
				require.NoError(t, err)
				assert.Len(t, trail, 1, "%s rolled back: no event", h.Name)
			}
			q, end = h.Open(t, db)
			write(q)
			end(true)
			row, err = ledger.Read(ctx, db, m)
			require.NoError(t, err)
			assert.Equal(t, ledger.Expanded, row.Phase, h.Name)
			assert.Equal(t, int64(2), row.Version, h.Name)
			assert.Equal(t, "tripped by "+h.Name, row.Tripped, h.Name)
			trail, err = ledger.Audit(ctx, db, m, 10)
			require.NoError(t, err)
			var kinds []string
			for _, e := range trail {
				kinds = append(kinds, e.Kind)
			}
			assert.Equal(t, []string{"register", "note", "advance"}, kinds, h.Name)
		}
	})
}

// A pool of no supported database is refused by every function, with
// the dialects' ErrUnknownDriver under the function's own prefix.
func TestUnknownDriver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := rollouttest.UnknownPool(t)
	for name, err := range map[string]error{
		"ensure ledger":    ledger.Ensure(ctx, db),
		"read migration":   second(ledger.Get(ctx, db, "m")),
		"list migrations":  second(ledger.List(ctx, db)),
		"read audit trail": second(ledger.Audit(ctx, db, "m", 1)),
		"record event":     ledger.Record(ctx, db, ledger.Event{Migration: "m"}),
		"add migration":    second(ledger.Add(ctx, db, ledger.Definition{Migration: "m"}, at)),
		"read stages":      second(ledger.Stages(ctx, db)),
		"read definitions": second(ledger.Definitions(ctx, db)),
	} {
		require.ErrorIs(t, err, dialects.ErrUnknownDriver, name)
		assert.True(t, strings.HasPrefix(err.Error(), name), "%s: %v", name, err)
	}
}

func second[T any](_ T, err error) error { return err }

func tableExists(t *testing.T, db *sqlx.DB, table string) bool {
	t.Helper()
	ok, err := dbtest.Dialect(t, db).TableExists(t.Context(), db, ident.Table{Name: table})
	require.NoError(t, err)
	return ok
}
