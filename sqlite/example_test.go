package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/sqlite"
)

// A backfill and its verification on an embedded database: what a
// service's unit test can run with no server at all.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "schemashift-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()

	db.MustExecContext(ctx, `CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, email_lower text)`)
	db.MustExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000)
		INSERT INTO users (id, email) SELECT i, 'User' || i || '@Example.COM' FROM s`)

	bf, err := backfill.New(ctx, db, backfill.Job{Name: "users_email_lower", Table: "users",
		Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}}, backfill.WithChunkSize(100, 100, 100))
	if err != nil {
		panic(err)
	}
	p, err := bf.Run(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("backfill %s: %d rows in %d chunks\n", p.Status, p.RowsDone, p.ChunksDone)
	rep, err := bf.Verify(ctx, backfill.VerifyOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Printf("verified: %d rows compared, %d divergent\n", rep.Compared, rep.Divergent)

	build := contract.Schema{Tables: []contract.Table{{Name: "users", Columns: []contract.Column{{Name: "email_lower", Type: "text"}}}}}
	fmt.Println("schema fits the build:", build.Verify(ctx, db) == nil)
	// Output:
	// backfill done: 1000 rows in 10 chunks
	// verified: 1000 rows compared, 0 divergent
	// schema fits the build: true
}
