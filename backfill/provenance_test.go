package backfill_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// The worked example with a transform that does not invert: full_name
// "Mary7 Ann Smith Jones7", written through the new path as given_name
// "Mary7 Ann" and family_name "Smith Jones7", splits back as "Mary7" and
// "Ann Smith Jones7". Rows the backfill fills have three words, which
// split and join back exactly.
const provenanceRows = 6000

// splitExprs are given_name and family_name as SQL over full_name.
func splitExprs(db *sqlx.DB) (given, family string) {
	if isSQLite(db) {
		return "substr(full_name, 1, instr(full_name, ' ') - 1)", "substr(full_name, instr(full_name, ' ') + 1)"
	}
	return "split_part(full_name, ' ', 1)", "substr(full_name, strpos(full_name, ' ') + 1)"
}

// person is one write through the new path: its two shapes.
type person struct {
	ID            int64
	Given, Family string
}

func (p person) full() string { return p.Given + " " + p.Family }

// provenanceCase is one way of moving full_name to the new shape.
type provenanceCase struct {
	// moved: the new shape is user_names(user_id, given_name, family_name).
	moved bool
	job   func(db *sqlx.DB, down bool) backfill.Job
}

var downFull = []backfill.Assign{{Column: "full_name", Expr: "given_name || ' ' || family_name"}}

func provenanceCases() map[string]provenanceCase {
	withDown := func(j backfill.Job, down bool) backfill.Job {
		if down {
			j.Down = downFull
		}
		return j
	}
	moveCheck := func(db *sqlx.DB) *backfill.Into {
		given, family := splitExprs(db)
		return &backfill.Into{Table: "user_names", Key: []string{"user_id"}, Columns: []backfill.Assign{
			{Column: "user_id", Expr: "id"}, {Column: "given_name", Expr: given}, {Column: "family_name", Expr: family}}}
	}
	// goSplit is what the Go-mode jobs compute, in Go.
	goSplit := func(r map[string]any) (int64, string, string) {
		full := fmt.Sprint(r["full_name"])
		given, family, _ := strings.Cut(full, " ")
		return r["id"].(int64), given, family
	}
	return map[string]provenanceCase{
		"set": {job: func(db *sqlx.DB, down bool) backfill.Job {
			given, family := splitExprs(db)
			return withDown(backfill.Job{Name: "split", Table: "users", Set: []backfill.Assign{
				{Column: "given_name", Expr: given}, {Column: "family_name", Expr: family}}}, down)
		}},
		"into": {moved: true, job: func(db *sqlx.DB, down bool) backfill.Job {
			return withDown(backfill.Job{Name: "split", Table: "users", Into: moveCheck(db)}, down)
		}},
		"go move": {moved: true, job: func(db *sqlx.DB, down bool) backfill.Job {
			return withDown(backfill.Job{Name: "split", Table: "users", Columns: []string{"full_name"}, Version: "1", Check: moveCheck(db),
				Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
					for _, r := range rows {
						id, given, family := goSplit(r)
						if _, err := tx.ExecContext(ctx, `INSERT INTO user_names VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING`, id, given, family); err != nil {
							return 0, err
						}
					}
					return int64(len(rows)), nil
				}}, down)
		}},
		"go same table": {job: func(*sqlx.DB, bool) backfill.Job {
			return backfill.Job{Name: "split", Table: "users", Columns: []string{"full_name"}, Version: "1", Fills: []string{"given_name", "family_name"},
				Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
					for _, r := range rows {
						id, given, family := goSplit(r)
						if _, err := tx.ExecContext(ctx, `UPDATE users SET given_name = $2, family_name = $3 WHERE id = $1`, id, given, family); err != nil {
							return 0, err
						}
					}
					return int64(len(rows)), nil
				}}
		}},
	}
}

// eachSQLMode runs fn for the Set and the Into case, on each database, in
// parallel.
func eachSQLMode(t *testing.T, fn func(t *testing.T, db *sqlx.DB, c provenanceCase)) {
	t.Helper()
	t.Parallel()
	for _, name := range []string{"set", "into"} {
		c := provenanceCases()[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
				t.Parallel()
				fn(t, db, c)
			})
		})
	}
}

// newShape is the table holding the case's new shape, and its key column.
func (c provenanceCase) newShape() (table, key string) {
	if c.moved {
		return "user_names", "user_id"
	}
	return "users", "id"
}

// provenanceTables creates users with provenanceRows three-word names,
// and, for a move, the empty user_names.
func provenanceTables(t *testing.T, db *sqlx.DB, moved bool) {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, full_name text, given_name text, family_name text)`)
	fill(t, db, provenanceRows, `INSERT INTO users (id, full_name) SELECT i, 'Ada' || i || ' B' || i || ' Lovelace' || i FROM s`)
	if moved {
		db.MustExecContext(t.Context(), `CREATE TABLE user_names (user_id bigint PRIMARY KEY, given_name text, family_name text)`)
	}
}

// newPathWriter writes people through a TxWriter at stage, both shapes in
// one transaction, and remembers the last value committed for each id.
type newPathWriter struct {
	w       *dualwrite.TxWriter[person]
	mu      sync.Mutex
	written map[int64]person
	failed  int
}

func newNewPathWriter(t *testing.T, db *sqlx.DB, stage flags.Stage, moved bool) *newPathWriter {
	t.Helper()
	flag, _ := flagstest.Flag(t, "users_split_name", stage)
	oldWrite := func(ctx context.Context, q sqlx.ExtContext, p person) error {
		_, err := q.ExecContext(ctx, `INSERT INTO users (id, full_name) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name`, p.ID, p.full())
		return err
	}
	newWrite := func(ctx context.Context, q sqlx.ExtContext, p person) error {
		_, err := q.ExecContext(ctx, `INSERT INTO users (id, given_name, family_name) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name`, p.ID, p.Given, p.Family)
		return err
	}
	if moved {
		newWrite = func(ctx context.Context, q sqlx.ExtContext, p person) error {
			_, err := q.ExecContext(ctx, `INSERT INTO user_names (user_id, given_name, family_name) VALUES ($1, $2, $3)
				ON CONFLICT (user_id) DO UPDATE SET given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name`, p.ID, p.Given, p.Family)
			return err
		}
	}
	w, err := dualwrite.NewTxWriter(db, flag, oldWrite, newWrite)
	require.NoError(t, err)
	return &newPathWriter{w: w, written: map[int64]person{}}
}

// write writes a multi-word name to id. A write that fails (a deadlock
// with a chunk, say) committed nothing and is not remembered.
func (n *newPathWriter) write(ctx context.Context, id int64, k int) {
	p := person{ID: id, Given: fmt.Sprintf("Mary%d Ann", k), Family: fmt.Sprintf("Smith Jones%d", k)}
	err := n.w.Write(ctx, p)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.failed++
		return
	}
	n.written[id] = p
}

// lost lists the ids whose last new-path write is not what the table holds.
func (n *newPathWriter) lost(t *testing.T, db *sqlx.DB, moved bool) []string {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	q := `SELECT full_name, given_name, family_name FROM users WHERE id = $1`
	if moved {
		q = `SELECT u.full_name, n.given_name, n.family_name FROM users u LEFT JOIN user_names n ON n.user_id = u.id WHERE u.id = $1`
	}
	var lost []string
	for id, p := range n.written {
		var got struct {
			Full   *string `db:"full_name"`
			Given  *string `db:"given_name"`
			Family *string `db:"family_name"`
		}
		require.NoError(t, db.GetContext(t.Context(), &got, q, id))
		if got.Full == nil || got.Given == nil || got.Family == nil || *got.Full != p.full() || *got.Given != p.Given || *got.Family != p.Family {
			lost = append(lost, fmt.Sprintf("%d: wrote %q/%q, holds %v/%v/%v", id, p.Given, p.Family, deref(got.Full), deref(got.Given), deref(got.Family)))
		}
	}
	return lost
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// Writes through the new path, with a transform that does not invert,
// land before every chunk (on rows the chunk is about to walk, rows behind
// it, and new rows past the end) and all through the backfill from a
// second writer, at dualwrite and at live, in every mode: not one is
// overwritten by Run, by Verify, or by Verify{Repair: true}; with Down
// declared they verify as new-path writes. A second job over the same
// rows, without Down, overwrites none either: it reports them as
// unverified, and its repair leaves them alone.
func TestBackfillNeverOverwritesNewPathWrites(t *testing.T) {
	t.Parallel()
	for name, c := range provenanceCases() {
		for _, stage := range []flags.Stage{flags.DualWrite, flags.Live} {
			t.Run(fmt.Sprintf("%s/%s", name, stage), func(t *testing.T) {
				t.Parallel()
				dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
					t.Parallel()
					testNewPathWritesSurvive(t, db, c, stage)
				})
			})
		}
	}
}

func testNewPathWritesSurvive(t *testing.T, db *sqlx.DB, c provenanceCase, stage flags.Stage) {
	provenanceTables(t, db, c.moved)
	writer := newNewPathWriter(t, db, stage, c.moved)
	// Before every chunk: writes anywhere in the key range, and inserts past it.
	var hookWrites int
	rng := rand.New(rand.NewPCG(1, 2))
	race := make(chan struct{}, 64) // the second writer's pace: a few writes per chunk, while it runs
	beforeChunk := func(int64) {
		for range 4 {
			hookWrites++
			writer.write(t.Context(), 2*rng.Int64N(provenanceRows/2+100), hookWrites) // even ids
			select {
			case race <- struct{}{}:
			default:
			}
		}
	}
	job := c.job(db, true)
	b := mustNew(t, db, job, backfill.WithChunkSize(200, 200, 200), backfill.WithAfterClaim(beforeChunk))

	// All through: a second writer, on odd ids, racing the chunks' locks.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var raced int
	wg.Go(func() {
		r := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-ctx.Done():
				return
			case <-race:
			}
			raced++
			writer.write(context.WithoutCancel(ctx), 2*r.Int64N(provenanceRows/2+100)+1, 100000+raced)
		}
	})
	_, err := b.Run(t.Context())
	stop()
	wg.Wait()
	require.NoError(t, err)
	require.Greater(t, hookWrites, 100)
	written := int64(len(writer.written))
	t.Logf("%d new-path writes on %d rows (%d before chunks, %d racing, %d failed)", hookWrites+raced, written, hookWrites, raced, writer.failed)
	require.Empty(t, writer.lost(t, db, c.moved), "new-path writes overwritten by the backfill")

	// Every row no one wrote was filled.
	var unfilled int
	q := `SELECT count(*) FROM users WHERE given_name IS NULL`
	if c.moved {
		q = `SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM user_names n WHERE n.user_id = u.id)`
	}
	require.NoError(t, db.GetContext(t.Context(), &unfilled, q))
	assert.Zero(t, unfilled)

	if job.Func != nil && job.Check == nil {
		_, err := b.Verify(t.Context(), backfill.VerifyOptions{})
		require.ErrorIs(t, err, backfill.ErrNotVerifiable)
		return
	}
	for _, repair := range []bool{false, true} {
		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 1000, Repair: repair})
		require.NoError(t, err)
		require.Empty(t, writer.lost(t, db, c.moved), "new-path writes overwritten by Verify (repair %v)", repair)
		assert.True(t, rep.Passed(), rep.Summary())
		assert.Equal(t, written, rep.NewPath, "every new-path write told apart: %s", rep.Summary())
		assert.Zero(t, rep.Repaired)
	}

	// The same rows under a job that declares no Down.
	plain := c.job(db, false)
	plain.Name = "split_without_down"
	b = mustNew(t, db, plain, backfill.WithChunkSize(1000, 1000, 1000))
	_, err = b.Run(t.Context())
	require.NoError(t, err)
	require.Empty(t, writer.lost(t, db, c.moved), "new-path writes overwritten by a second backfill")
	for _, repair := range []bool{false, true} {
		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{ChunkRows: 1000, Repair: repair})
		require.NoError(t, err)
		require.Empty(t, writer.lost(t, db, c.moved), "new-path writes overwritten by Verify without Down (repair %v)", repair)
		assert.False(t, rep.Passed())
		assert.Equal(t, written, rep.Unverified, "without Down, a new-path write cannot be told from drift: %s", rep.Summary())
		assert.Equal(t, rep.Unverified, rep.Divergent)
		assert.Zero(t, rep.Repaired)
	}
}

// A legacy writer changes full_name alone after the backfill, on rows the
// backfill filled and on rows written through the new path: with Down
// declared, Verify finds both as drifted, and the repair rewrites them
// from the old shape, the side written last, and leaves every other
// new-path write as it is.
func TestLegacyWriterAfterBackfillIsRepairedFromOldSide(t *testing.T) {
	eachSQLMode(t, func(t *testing.T, db *sqlx.DB, c provenanceCase) {
		provenanceTables(t, db, c.moved)
		writer := newNewPathWriter(t, db, flags.DualWrite, c.moved)
		for id := int64(100); id < 120; id++ {
			writer.write(t.Context(), id, int(id))
		}
		b := mustNew(t, db, c.job(db, true), backfill.WithChunkSize(500, 500, 500))
		_, err := b.Run(t.Context())
		require.NoError(t, err)
		require.Empty(t, writer.lost(t, db, c.moved))

		// Behind the adapters: 5 filled rows and 5 new-path rows.
		db.MustExecContext(t.Context(), `UPDATE users SET full_name = 'Legacy' || id || ' Writer' WHERE id BETWEEN 10 AND 14 OR id BETWEEN 100 AND 104`)
		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{})
		require.NoError(t, err)
		assert.Equal(t, int64(10), rep.Drifted, rep.Summary())
		assert.Equal(t, int64(10), rep.Divergent)
		assert.Equal(t, int64(15), rep.NewPath, "the new-path writes the legacy writer left alone")
		require.Len(t, rep.Diverged, 10)
		assert.Equal(t, backfill.Key{"10"}, rep.Diverged[0].Key)
		assert.Equal(t, backfill.Drifted, rep.Diverged[0].Kind)

		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{Repair: true})
		require.NoError(t, err)
		assert.Equal(t, int64(10), rep.Repaired)
		assert.Zero(t, rep.Remaining)
		table, key := c.newShape()
		q := `SELECT given_name || '/' || family_name FROM ` + table + ` WHERE ` + key + ` = $1`
		for _, id := range []int64{12, 102} {
			var got string
			require.NoError(t, db.GetContext(t.Context(), &got, q, id))
			assert.Equal(t, fmt.Sprintf("Legacy%d/Writer", id), got, "repaired from the old shape")
		}
		// The new-path writes the legacy writer did not touch are intact.
		writer.mu.Lock()
		for id := int64(100); id <= 104; id++ {
			delete(writer.written, id)
		}
		writer.mu.Unlock()
		require.Empty(t, writer.lost(t, db, c.moved))
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{})
		require.NoError(t, err)
		assert.True(t, rep.Passed(), rep.Summary())
	})
}

// A repair of 200,000 drifted rows runs in batches (one statement listing
// every key overflowed PostgreSQL's stack) and repairs them all, listed
// or not. SQLite, slowed tens of times by the race detector, repairs
// 20,000 through the same batches.
func TestRepairOfManyRowsCompletes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		n := 200_000
		if isSQLite(db) {
			n = 20_000
		}
		db.MustExecContext(t.Context(), `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)`)
		fill(t, db, n, `INSERT INTO users (id, email, email_lower) SELECT i, 'User' || i || '@Example.COM', 'user' || i || '@example.com' FROM s`)
		b := mustNew(t, db, emailJob("many"))
		_, err := b.Run(t.Context())
		require.NoError(t, err)
		db.MustExecContext(t.Context(), `UPDATE users SET email = 'Other' || id || '@Example.COM'`)

		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{Repair: true})
		require.NoError(t, err)
		assert.Equal(t, int64(n), rep.Divergent)
		assert.Equal(t, int64(n), rep.Drifted)
		assert.Len(t, rep.Diverged, 1000, "listed: MaxKeys")
		assert.Equal(t, int64(n), rep.Repaired, "repaired: all of them")
		assert.Zero(t, rep.Remaining)
		assert.Equal(t, 0, divergent(t, db))
		st, err := b.State(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "repaired", st.Verify)
		assert.Zero(t, st.Divergent)
	})
}

// A writer that bypassed the adapters wrote the new shape alone: the
// operator, who knows that side was written last, repairs from it, and the
// old columns are rewritten as Down of the new ones; the new shape is kept.
// A job without Down cannot repair that way.
func TestRepairFromNewSide(t *testing.T) {
	eachSQLMode(t, func(t *testing.T, db *sqlx.DB, c provenanceCase) {
		provenanceTables(t, db, c.moved)
		b := mustNew(t, db, c.job(db, true), backfill.WithChunkSize(500, 500, 500))
		_, err := b.Run(t.Context())
		require.NoError(t, err)
		table, key := c.newShape()
		db.MustExecContext(t.Context(), `UPDATE `+table+` SET given_name = 'Jo Ann', family_name = 'Bypass' || `+key+` WHERE `+key+` BETWEEN 20 AND 24`)
		rep, err := b.Verify(t.Context(), backfill.VerifyOptions{Repair: true, RepairFrom: backfill.FromNew})
		require.NoError(t, err)
		assert.Equal(t, int64(5), rep.Drifted, rep.Summary())
		assert.Equal(t, int64(5), rep.Repaired)
		assert.Zero(t, rep.Remaining)
		for id := int64(20); id <= 24; id++ {
			var full, given string
			require.NoError(t, db.GetContext(t.Context(), &full, `SELECT full_name FROM users WHERE id = $1`, id))
			require.NoError(t, db.GetContext(t.Context(), &given, `SELECT given_name FROM `+table+` WHERE `+key+` = $1`, id))
			assert.Equal(t, fmt.Sprintf("Jo Ann Bypass%d", id), full, "the old shape rewritten from the new")
			assert.Equal(t, "Jo Ann", given, "the new shape kept")
		}
		rep, err = b.Verify(t.Context(), backfill.VerifyOptions{})
		require.NoError(t, err)
		assert.True(t, rep.Passed(), rep.Summary())
		assert.Equal(t, int64(5), rep.NewPath, "consistent by Down now")

		plain := c.job(db, false)
		plain.Name = "without_down"
		b = mustNew(t, db, plain)
		_, err = b.Verify(t.Context(), backfill.VerifyOptions{Repair: true, RepairFrom: backfill.FromNew})
		require.ErrorIs(t, err, backfill.ErrNoInverse)
	})
}
