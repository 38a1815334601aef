package dialects_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dialect/postgres"
	"github.com/schemashift/schemashift/internal/dialect/sqlite"
	"github.com/schemashift/schemashift/internal/dialects"
)

// A bound transaction's dialect is the one it was bound to, taken as it
// is: a transaction of a driver that refuses every statement, which no
// probe could identify, is of the dialect it was bound to, and runs its
// statements as they are.
func TestBoundHandleIsOfItsDialect(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	register.Do(func() { sql.Register(unknownName, unknownDriver{}) })
	raw, err := sql.Open(unknownName, "")
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	db := sqlx.NewDb(raw, "pgx")
	tx, err := db.BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck // nothing to keep

	_, err = dialects.For(ctx, tx)
	require.ErrorIs(t, err, dialects.ErrUnknownDriver, "unbound, the transaction answers no probe")

	b := dialects.Bind(tx, postgres.New())
	d, err := dialects.For(ctx, b)
	require.NoError(t, err)
	assert.Equal(t, postgres.New(), d)
	assert.Equal(t, postgres.New(), b.Dialect())
	h, hd, err := dialects.Handle(ctx, b)
	require.NoError(t, err)
	assert.Same(t, tx, h, "the handle is the transaction bound")
	assert.Equal(t, postgres.New(), hd)
	_, err = b.ExecContext(ctx, `SELECT 1`)
	assert.ErrorIs(t, err, errNoSQL, "statements run on the transaction")

	for name, bad := range map[string]*dialects.Bound{
		"nil":           nil,
		"no handle":     dialects.Bind(nil, postgres.New()),
		"no dialect":    dialects.Bind(tx, nil),
		"zero value":    {},
		"nil tx inside": dialects.Bind((*sqlx.Tx)(nil), postgres.New()),
	} {
		_, err := dialects.For(ctx, bad)
		assert.ErrorIs(t, err, dialects.ErrUnknownDriver, name)
		_, _, err = dialects.Handle(ctx, bad)
		assert.ErrorIs(t, err, dialects.ErrUnknownDriver, name)
	}
}

// SQLite's schemas of schemashift's own tables (the ledger's, the DDL
// executor's steps, the backfill's checkpoints), written out in its own
// types, are its rendering of PostgreSQL's, to the token: the two
// databases hold one design, and a table made by an earlier build (when
// SQLite's DDL was rendered from PostgreSQL's) is the one this build
// upgrades. Versions only ever come at the end, in both.
func TestSchemasAreOneSchema(t *testing.T) {
	t.Parallel()
	pg, lite := postgres.Dialect{}, sqlite.Dialect{}
	same := func(pgDDL, liteDDL, what string) {
		t.Helper()
		assert.Equal(t, strings.Fields(lite.Schema(pgDDL)), strings.Fields(liteDDL), what)
	}
	require.Len(t, lite.LedgerSchema(), len(pg.LedgerSchema()))
	for v, ddl := range pg.LedgerSchema() {
		same(ddl, lite.LedgerSchema()[v], fmt.Sprintf("ledger version %d", v+1))
	}
	same(pg.DDLStepsSchema(), lite.DDLStepsSchema(), "the DDL executor's steps")
	for _, have := range [][]string{nil, {"job"}} {
		for _, runs := range []bool{false, true} {
			same(pg.BackfillSchema(have, runs), lite.BackfillSchema(have, runs), fmt.Sprintf("the backfill's checkpoints, having %v, runs %v", have, runs))
		}
	}
}
