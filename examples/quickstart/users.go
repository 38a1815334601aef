package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/rollout"
)

// User is what the service works with, whatever the table looks like.
type User struct {
	ID         int64
	GivenName  string
	FamilyName string
}

// users is the service's repository, wrapped in dualwrite adapters: the
// old code path and the new one side by side, chosen per call by the stage.
type users struct {
	db     *sqlx.DB
	flag   *flags.Flag
	reads  *dualwrite.Reader[int64, User]
	writes *dualwrite.TxWriter[User]
}

// newUsers wraps the repository for one service instance: its stage source
// and its observer (which feeds the instance's heartbeat) come from the
// rollout startup hook.
func newUsers(db *sqlx.DB, svc *rollout.Service) (*users, error) {
	flag, err := svc.Flag(migration)
	if err != nil {
		return nil, err
	}
	// The old shape cannot tell "Mary Ann" "Smith Jones" from "Mary" "Ann
	// Smith Jones": the two paths agree when they agree on the full name.
	sameName := dualwrite.EqualFunc(func(old, new User) bool {
		return old.ID == new.ID && old.GivenName+" "+old.FamilyName == new.GivenName+" "+new.FamilyName
	})
	reads, err := dualwrite.NewReader(flag, readOld(db), readNew(db), dualwrite.WithObserver(svc.Observer()),
		dualwrite.WithComparator(sameName))
	if err != nil {
		return nil, err
	}
	writes, err := dualwrite.NewTxWriter(db, flag, writeOld, writeNew, dualwrite.WithObserver(svc.Observer()))
	if err != nil {
		return nil, err
	}
	return &users{db: db, flag: flag, reads: reads, writes: writes}, nil
}

func (u *users) Get(ctx context.Context, id int64) (User, error) { return u.reads.Read(ctx, id) }
func (u *users) Save(ctx context.Context, user User) error       { return u.writes.Write(ctx, user) }

// Stage is the stage this instance evaluates for ctx now.
func (u *users) Stage(ctx context.Context) flags.Stage { return u.flag.Stage(ctx) }

// Close stops the shadow reads.
func (u *users) Close() error { return u.reads.Close() }

// The old code path: one full_name column.
func readOld(db *sqlx.DB) dualwrite.ReadFunc[int64, User] {
	return func(ctx context.Context, id int64) (User, error) {
		var full string
		if err := db.GetContext(ctx, &full, `SELECT full_name FROM users WHERE id = $1`, id); err != nil {
			return User{}, err
		}
		given, family, _ := strings.Cut(full, " ")
		return User{ID: id, GivenName: given, FamilyName: family}, nil
	}
}

func writeOld(ctx context.Context, q sqlx.ExtContext, u User) error {
	full := strings.TrimSpace(u.GivenName + " " + u.FamilyName)
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, full_name) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name`, u.ID, full)
	return err
}

// The new code path: given_name and family_name. Its write is an upsert of
// the full new representation.
func readNew(db *sqlx.DB) dualwrite.ReadFunc[int64, User] {
	return func(ctx context.Context, id int64) (User, error) {
		var row struct {
			Given  sql.NullString `db:"given_name"`
			Family sql.NullString `db:"family_name"`
		}
		if err := db.GetContext(ctx, &row, `SELECT given_name, family_name FROM users WHERE id = $1`, id); err != nil {
			return User{}, err
		}
		return User{ID: id, GivenName: row.Given.String, FamilyName: row.Family.String}, nil
	}
}

func writeNew(ctx context.Context, q sqlx.ExtContext, u User) error {
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, given_name, family_name) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name`,
		u.ID, u.GivenName, u.FamilyName)
	return err
}

var (
	givenNames  = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus"}
	familyNames = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Wirth"}
)

func randomName() (string, string) {
	return givenNames[rand.IntN(len(givenNames))], familyNames[rand.IntN(len(familyNames))]
}

// multiWordName is a name only the new shape holds: its full name splits
// back as another one.
func multiWordName() (string, string) {
	g, f := randomName()
	g2, f2 := randomName()
	return g + " " + g2, f + "-" + f2 + " " + f
}

// seed creates the table as the old code knows it, with n users. On SQLite,
// which cannot drop a NOT NULL later, full_name starts nullable.
func seed(ctx context.Context, db *sqlx.DB, n int, onSQLite bool) error {
	create := `CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, full_name text NOT NULL)`
	if onSQLite {
		create = `CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, full_name text)`
	}
	if _, err := db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create users: %w", err)
	}
	_, err := db.ExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1)
		INSERT INTO users (id, full_name)
		SELECT i, CASE i % 5 WHEN 0 THEN 'Ada Lovelace' WHEN 1 THEN 'Grace Hopper' WHEN 2 THEN 'Alan Turing'
			WHEN 3 THEN 'Edsger Dijkstra' ELSE 'Barbara Liskov' END
		FROM s WHERE true ON CONFLICT DO NOTHING`, n)
	if err != nil {
		return fmt.Errorf("seed users: %w", err)
	}
	return nil
}
