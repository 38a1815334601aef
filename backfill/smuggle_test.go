package backfill_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

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
		"a backslash before a quote": `'it\''`,
		"the span's parameters":      `$$'$$) WHERE $1::text IS NOT NULL AND $2::text IS NOT NULL -- '`,
		// pgx's simple protocol reads a dollar quote from a$b$ on.
		"a dollar in a name": `(SELECT email AS a$b$) || '$b$ $1 $c$' || (SELECT 1 AS a$c$)`,
	}
	// What SQLite reads otherwise than PostgreSQL's lexer (an attack
	// review's): $a(') is one parameter's name there, and what follows
	// it code.
	sqliteOnly := map[string]string{
		"SQLite's ? parameter":    `lower(email) || ?`,
		"SQLite's $ parameter":    `lower(email) || $abc`,
		"SQLite's $a(…) name":     `$a(')) WHERE 1=1 -- ')`,
		"SQLite's @::a(…) name":   `@::a(')) WHERE 1=1 --')`,
		"a quote in [ … ]":        `[']`,
		"a quote in [ … ], again": `x['k']`,
	}
	ctx := t.Context()
	for _, c := range []struct {
		name    string
		db      *sqlx.DB
		hostile []map[string]string
	}{
		{"postgres", pgtest.DB(t), []map[string]string{hostile}},
		{"sqlite", dbtest.SQLite(t), []map[string]string{hostile, sqliteOnly}},
	} {
		db := c.db
		usersTable(t, db, 30)
		// Ten rows written through the new path, with what no transform
		// of the old shape gives.
		db.MustExecContext(ctx, `UPDATE users SET email_lower = 'new path ' || id WHERE id <= 30`)
		db.MustExecContext(ctx, `CREATE TABLE user_copies (id bigint PRIMARY KEY, email text)`)
		db.MustExecContext(ctx, `INSERT INTO user_copies SELECT id, email_lower FROM users WHERE id <= 30`)
		if c.name == "postgres" {
			// Its chunks then run unwrapped (see TestARuledTableWithChildrenIsFilled).
			db.MustExecContext(ctx, `CREATE TABLE users_audit (id bigint)`)
			db.MustExecContext(ctx, `CREATE RULE users_audit AS ON UPDATE TO users DO ALSO INSERT INTO users_audit (id) VALUES (new.id)`)
		}
		for _, list := range c.hostile {
			for name, expr := range list {
				set := backfill.Job{Name: "set " + name, Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: expr}}}
				// A Go-mode move's check: New runs none of its statements.
				moved := backfill.Job{Name: "move " + name, Table: "users", Version: "1",
					Func: func(context.Context, *sqlx.Tx, []map[string]any) (int64, error) { return 0, nil },
					Check: &backfill.Into{Table: "user_copies", Key: []string{"id"},
						Columns: []backfill.Assign{{Column: "id", Expr: "id"}, {Column: "email", Expr: expr}}}}
				for _, job := range []backfill.Job{set, moved} {
					b, err := backfill.New(ctx, db, job, quick()...)
					if err == nil {
						// What the attacker wanted: the job runs, and its
						// verification repairs.
						_, runErr := b.Run(ctx)
						_, verifyErr := b.Verify(ctx, backfill.VerifyOptions{Repair: true})
						t.Logf("%s: %s: ran: %v; verified: %v", c.name, job.Name, runErr, verifyErr)
					}
					assert.ErrorIs(t, err, backfill.ErrInvalidJob, "%s: %s", c.name, job.Name)
					var kept, copies int
					require.NoError(t, db.GetContext(ctx, &kept, `SELECT count(*) FROM users WHERE email_lower = 'new path ' || id`))
					require.Equal(t, 10, kept, "%s: %s: the new path's writes are kept", c.name, job.Name)
					require.NoError(t, db.GetContext(ctx, &copies, `SELECT count(*) FROM user_copies WHERE email = 'new path ' || id`))
					require.Equal(t, 10, copies, "%s: %s: the moved rows are kept", c.name, job.Name)
				}
			}
		}
	}
}
