package contracttest_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/contract/contracttest"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPairs(t *testing.T) {
	t.Parallel()
	pairs := contracttest.Pairs()
	assert.Len(t, pairs, 16, "6 same-stage pairs and 10 adjacent ones")
	for _, p := range pairs {
		d := int(p.Writer) - int(p.Reader)
		assert.LessOrEqual(t, d*d, 1, "%v", p)
	}
}

type user struct {
	ID            int64
	Given, Family string
}

func readOld(db *sqlx.DB) dualwrite.ReadFunc[int64, user] {
	return func(ctx context.Context, id int64) (user, error) {
		var full string
		if err := db.GetContext(ctx, &full, `SELECT full_name FROM users WHERE id = $1`, id); err != nil {
			return user{}, err
		}
		given, family, _ := strings.Cut(full, " ")
		return user{ID: id, Given: given, Family: family}, nil
	}
}

func readNew(db *sqlx.DB) dualwrite.ReadFunc[int64, user] {
	return func(ctx context.Context, id int64) (user, error) {
		var r struct {
			Given  sql.NullString `db:"given_name"`
			Family sql.NullString `db:"family_name"`
		}
		if err := db.GetContext(ctx, &r, `SELECT given_name, family_name FROM users WHERE id = $1`, id); err != nil {
			return user{}, err
		}
		return user{ID: id, Given: r.Given.String, Family: r.Family.String}, nil
	}
}

func writeOld(ctx context.Context, q sqlx.ExtContext, u user) error {
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, full_name) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name`, u.ID, u.Given+" "+u.Family)
	return err
}

func writeNew(ctx context.Context, q sqlx.ExtContext, u user) error {
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, given_name, family_name) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name`, u.ID, u.Given, u.Family)
	return err
}

// writer is what a repository's write path is: the dualwrite TxWriter, or
// a hand-rolled one.
type writer interface {
	Write(ctx context.Context, u user) error
}

// shortcut is a deliberately broken hand-rolled adapter: once the new shape
// is authoritative it stops writing the old one, as if live were complete.
// Every instance at one stage agrees with itself; a reader one stage
// behind does not.
type shortcut struct {
	db   *sqlx.DB
	flag dualwrite.StageSource
	ok   writer
}

func (s shortcut) Write(ctx context.Context, u user) error {
	if st := s.flag.Stage(ctx); st == flags.Live || st == flags.Rampdown {
		return writeNew(ctx, s.db, u)
	}
	return s.ok.Write(ctx, u)
}

// ids are fresh for every write, so no scenario sees another's rows.
var ids atomic.Int64

func scenario(t *testing.T, db *sqlx.DB, broken bool) contracttest.Scenario {
	next := &ids
	return func(ctx context.Context, writerFlag, readerFlag dualwrite.StageSource) error {
		tw, err := dualwrite.NewTxWriter(db, writerFlag, writeOld, writeNew)
		if err != nil {
			return err
		}
		var w writer = tw
		if broken {
			w = shortcut{db: db, flag: writerFlag, ok: tw}
		}
		r, err := dualwrite.NewReader(readerFlag, readOld(db), readNew(db))
		if err != nil {
			return err
		}
		defer r.Close()
		want := user{ID: next.Add(1), Given: "Ada", Family: "Lovelace"}
		if err := w.Write(ctx, want); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		got, err := r.Read(ctx, want.ID)
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		if got != want {
			return fmt.Errorf("read back %+v, wrote %+v", got, want)
		}
		return nil
	}
}

func usersTable(t *testing.T, db *sqlx.DB) {
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, full_name text, given_name text, family_name text)`)
}

// The users.full_name example: the dualwrite adapters agree under every
// pair; a hand-rolled adapter that skips the old write at live is caught,
// and only by the mixed pair that a same-stage test would never run.
func TestUsersSplitNameAcrossStagePairs(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		usersTable(t, db)
		contracttest.Check(t, "users_split_name", scenario(t, db, false))

		bad := contracttest.Disagreements(t, "users_split_name", scenario(t, db, true))
		require.Len(t, bad, 1)
		assert.Equal(t, contracttest.Pair{Writer: flags.Live, Reader: flags.Shadow}, bad[0].Pair)
		assert.ErrorContains(t, bad[0].Err, `"full_name": converting NULL`, "the reader one stage behind finds no old shape")

		// Check reports it as a failure naming the pair.
		rec := &recorder{T: t}
		contracttest.Check(rec, "users_split_name", scenario(t, db, true))
		assert.True(t, rec.failed)
		assert.Contains(t, rec.msg, "writer=live/reader=shadow")
	})
}

// recorder captures what Check reports instead of failing the test.
type recorder struct {
	*testing.T
	failed bool
	msg    string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
}
