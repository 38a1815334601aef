package backfill_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

// An expression cannot end where the database reads it end but a check
// does not, and take the rest of a chunk's statement with it. Most here
// close the parenthesis the dialect puts around the expression and
// comment out the rest (the chunk's span and its filter of rows no one
// wrote) behind a quote the old check, a scan for single quotes, took for
// the start of a string. On SQLite, "'") -- ' passed it (a double-quoted
// name that names no column is a string there), and its first chunk ran
// UPDATE users SET email_lower = ("'") over the whole table: all ten
// writes made through the new path were overwritten. On PostgreSQL the
// old check let through the span's parameters case too, and only the
// parameters' count stopped its chunk. New now refuses each of them as
// an invalid job, before any statement, and no row changes.
func TestAnExpressionCannotTakeTheStatementWithIt(t *testing.T) {
	t.Parallel()
	hostile := map[string]string{
		"dollar-quoted quote":        `$$'$$) -- '`,
		"escaped quote":              `E'\'') -- '`,
		"quote in a name":            `"'") -- '`,
		"unbalanced paren":           `'x'), email = ('taken'`,
		"a second expression":        `lower(email), 'x'`,
		"a parameter":                `$1`,
		"SQLite's parameter":         `lower(email) || ?`,
		"a name in brackets":         `[']`,
		"a backslash before a quote": `'it\''`,
		"the span's parameters":      `$$'$$) WHERE $1::text IS NOT NULL AND $2::text IS NOT NULL -- '`,
	}
	db := pgtest.DB(t)
	ctx := t.Context()
	usersTable(t, db, 30)
	// Ten rows written through the new path, with what no transform of
	// the old shape gives.
	db.MustExecContext(ctx, `UPDATE users SET email_lower = 'new path ' || id WHERE id <= 30`)
	db.MustExecContext(ctx, `CREATE TABLE users_audit (id bigint)`)
	db.MustExecContext(ctx, `CREATE RULE users_audit AS ON UPDATE TO users DO ALSO INSERT INTO users_audit (id) VALUES (new.id)`)
	for name, expr := range hostile {
		job := backfill.Job{Name: "smuggle " + name, Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: expr}}}
		b, err := backfill.New(ctx, db, job, quick()...)
		if err == nil {
			// What the attacker wanted: the job runs.
			_, runErr := b.Run(ctx)
			t.Logf("%s: ran: %v", name, runErr)
		}
		assert.ErrorIs(t, err, backfill.ErrInvalidJob, name)
		var kept int
		require.NoError(t, db.GetContext(ctx, &kept, `SELECT count(*) FROM users WHERE email_lower = 'new path ' || id`))
		require.Equal(t, 10, kept, "%s: the new path's writes are kept", name)
	}
	// The same expressions on SQLite, whose reader differs again (a
	// double-quoted name that names no column is a string there).
	lite := dbtest.SQLite(t)
	usersTable(t, lite, 30)
	lite.MustExecContext(ctx, `UPDATE users SET email_lower = 'new path ' || id WHERE id <= 30`)
	for name, expr := range hostile {
		b, err := backfill.New(ctx, lite, backfill.Job{Name: "smuggle " + name, Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: expr}}}, quick()...)
		if err == nil {
			_, runErr := b.Run(ctx)
			t.Logf("sqlite %s: ran: %v", name, runErr)
		}
		assert.ErrorIs(t, err, backfill.ErrInvalidJob, "sqlite: %s", name)
		var kept int
		require.NoError(t, lite.GetContext(ctx, &kept, `SELECT count(*) FROM users WHERE email_lower = 'new path ' || id`))
		require.Equal(t, 10, kept, "sqlite: %s: the new path's writes are kept", name)
	}
}
