package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/sqlite"
)

// exampleDB opens a throwaway SQLite database, so that the examples run
// with no server; on PostgreSQL they read the same.
func exampleDB(ctx context.Context) (db *sqlx.DB, done func()) {
	dir, err := os.MkdirTemp("", "schemashift-backfill-example-")
	if err != nil {
		panic(err)
	}
	db, err = sqlite.Open(ctx, filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	return db, func() { db.Close(); os.RemoveAll(dir) }
}

// stopAfter cancels the run once n chunks have committed: a process
// killed mid-backfill.
type stopAfter struct {
	backfill.NopObserver
	n      int64
	cancel context.CancelFunc
}

func (s *stopAfter) ObserveChunk(_ context.Context, c backfill.Chunk) {
	if c.Seq >= s.n { // Seq counts from 1
		s.cancel()
	}
}

// A backfill interrupted after three chunks resumes from its checkpoint:
// the second run does the seven chunks left, and no chunk twice.
func Example_resume() {
	ctx := context.Background()
	db, done := exampleDB(ctx)
	defer done()
	db.MustExecContext(ctx, `CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, email_lower text)`)
	db.MustExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000)
		INSERT INTO users (id, email) SELECT i, 'User' || i || '@Example.COM' FROM s`)
	job := backfill.Job{Name: "users_email_lower", Table: "users",
		Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}}
	fixed := backfill.WithChunkSize(100, 100, 100)

	killed, kill := context.WithCancel(ctx)
	bf, err := backfill.New(ctx, db, job, fixed, backfill.WithObserver(&stopAfter{n: 3, cancel: kill}))
	if err != nil {
		panic(err)
	}
	_, err = bf.Run(killed)
	fmt.Println("first run stopped:", errors.Is(err, context.Canceled))
	p, _ := backfill.State(ctx, db, job.Name)
	fmt.Printf("checkpoint: %d of 1000 rows, %d chunks\n", p.RowsDone, p.ChunksDone)

	bf, err = backfill.New(ctx, db, job, fixed) // a new process, the same job
	if err != nil {
		panic(err)
	}
	p, err = bf.Run(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("second run: %s, %d rows in %d chunks, %d runs, %d chunks redone\n",
		p.Status, p.RowsDone, p.ChunksDone, p.Runs, p.ChunksRedone)
	// Output:
	// first run stopped: true
	// checkpoint: 300 of 1000 rows, 3 chunks
	// second run: done, 1000 rows in 10 chunks, 2 runs, 0 chunks redone
}

// A move into another table, then a writer that bypasses the dual-write
// adapters: verification finds the row it broke, names the column, and
// repairs it by re-running the backfill over that row alone. A move
// compares whole rows: the field is the target's row.
func Example_into() {
	ctx := context.Background()
	db, done := exampleDB(ctx)
	defer done()
	db.MustExecContext(ctx, `CREATE TABLE orders (id integer PRIMARY KEY, amount_cents integer NOT NULL)`)
	db.MustExecContext(ctx, `CREATE TABLE order_totals (order_id integer PRIMARY KEY, amount numeric NOT NULL)`)
	db.MustExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)
		INSERT INTO orders SELECT i, i * 100 FROM s`)

	bf, err := backfill.New(ctx, db, backfill.Job{Name: "orders_totals", Table: "orders", Into: &backfill.Into{
		Table: "order_totals", Key: []string{"order_id"},
		Columns: []backfill.Assign{{Column: "order_id", Expr: "id"}, {Column: "amount", Expr: "amount_cents / 100"}},
	}, Derived: true}) // the new path writes amount_cents / 100, nothing else
	if err != nil {
		panic(err)
	}
	p, err := bf.Run(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("moved %d rows\n", p.RowsChanged)

	db.MustExecContext(ctx, `UPDATE order_totals SET amount = 0 WHERE order_id = 42`)
	rep, err := bf.Verify(ctx, backfill.VerifyOptions{Repair: true})
	if err != nil {
		panic(err)
	}
	for _, d := range rep.Diverged {
		for _, f := range d.Fields {
			fmt.Printf("row %v (%s): %s is %s, should be %s\n", d.Key, d.Kind, f.Column, f.Got, f.Want)
		}
	}
	fmt.Printf("%d divergent, %d repaired, %d remaining\n", rep.Divergent, rep.Repaired, rep.Remaining)
	// Output:
	// moved 500 rows
	// row [42] (drifted): (order_id, amount) is (42,0), should be (42,42)
	// 1 divergent, 1 repaired, 0 remaining
}
