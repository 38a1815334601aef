package contract_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// Verify takes a pool or a transaction of either package, and reads the
// catalog as its handle sees it: a transaction that created a table sees
// it; the pool does not until the transaction commits, and never when it
// rolls back.
func TestVerifyTakesEveryDB(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		s := contract.Schema{Tables: []contract.Table{{Name: "notes", Columns: []contract.Column{{Name: "body", Type: "text"}}}}}
		for _, pool := range []contract.DB{db, db.DB} {
			require.ErrorIs(t, contract.Verify(ctx, pool, s), contract.ErrMismatch, "%T: no table yet", pool)
		}
		type begun struct {
			q              contract.DB
			commit, cancel func() error
		}
		begins := map[string]func() begun{
			"sql.Tx": func() begun {
				tx, err := db.DB.BeginTx(ctx, nil)
				require.NoError(t, err)
				return begun{tx, tx.Commit, tx.Rollback}
			},
			"sqlx.Tx": func() begun {
				tx, err := db.BeginTxx(ctx, nil)
				require.NoError(t, err)
				return begun{tx, tx.Commit, tx.Rollback}
			},
		}
		for name, begin := range begins {
			for _, commit := range []bool{false, true} {
				tx := begin()
				_, err := tx.q.ExecContext(ctx, `CREATE TABLE notes (body text)`)
				require.NoError(t, err)
				require.NoError(t, contract.Verify(ctx, tx.q, s), "%s sees its own table", name)
				if commit {
					require.NoError(t, tx.commit())
				} else {
					require.NoError(t, tx.cancel())
				}
				for _, pool := range []contract.DB{db, db.DB} {
					if err := contract.Verify(ctx, pool, s); commit {
						assert.NoError(t, err, "%s committed: %T sees the table", name, pool)
					} else {
						assert.ErrorIs(t, err, contract.ErrMismatch, "%s rolled back: %T sees no table", name, pool)
					}
				}
			}
			db.MustExecContext(ctx, `DROP TABLE notes`)
		}
	})
}
