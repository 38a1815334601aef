package contract_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/sqlite"
)

// A build that reads the split name checks the database at startup: until
// the expand has run, it lists every requirement the schema misses, and a
// service refuses to start rather than fail on its first query.
func ExampleSchema_Verify() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "schemashift-contract-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "app.db")) // on PostgreSQL the same
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.MustExecContext(ctx, `CREATE TABLE users (id integer PRIMARY KEY, full_name text NOT NULL)`)

	build := contract.Schema{Tables: []contract.Table{{
		Name: "users",
		Columns: []contract.Column{
			{Name: "id", Type: "bigint"},
			{Name: "given_name", Type: "text", Nullable: contract.Nullable},
			{Name: "family_name", Type: "text", Nullable: contract.Nullable},
		},
		Indexes: []contract.Index{{Columns: []string{"family_name", "given_name"}}},
		Absent:  []string{"full_name"},
	}}}
	err = build.Verify(ctx, db)
	var mismatch *contract.MismatchError
	if errors.As(err, &mismatch) {
		for _, p := range mismatch.Problems {
			fmt.Println(p)
		}
	}

	db.MustExecContext(ctx, `ALTER TABLE users ADD COLUMN given_name text`)
	db.MustExecContext(ctx, `ALTER TABLE users ADD COLUMN family_name text`)
	db.MustExecContext(ctx, `CREATE INDEX users_name ON users (family_name, given_name)`)
	db.MustExecContext(ctx, `ALTER TABLE users DROP COLUMN full_name`)
	fmt.Println("after the rollout:", build.Verify(ctx, db))
	// Output:
	// column users.given_name is missing
	// column users.family_name is missing
	// column users.full_name still exists, want it dropped
	// index (family_name, given_name) on users is missing
	// after the rollout: <nil>
}
