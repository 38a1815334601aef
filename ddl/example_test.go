package ddl_test

import (
	"fmt"

	"github.com/schemashift/schemashift/ddl"
)

func ExampleLint() {
	findings, err := ddl.Lint(`
SET lock_timeout = '2s';
ALTER TABLE users ADD COLUMN given_name text;
CREATE INDEX users_given ON users (given_name);
-- schemashift:ignore rename
ALTER TABLE legacy RENAME TO legacy_old;`, ddl.ExpandStep)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range findings {
		fmt.Printf("%d:%d %s\n", f.Line, f.Column, f.Rule)
	}
	// Output:
	// 4:1 index-not-concurrent
}

func ExampleSetNotNull() {
	for _, major := range []int{15, 18} {
		steps, _ := ddl.SetNotNull{Table: "users", Column: "email"}.Up(major)
		fmt.Printf("PostgreSQL %d:\n", major)
		for _, s := range steps {
			fmt.Println(" ", s.SQL)
		}
	}
	// Output:
	// PostgreSQL 15:
	//   ALTER TABLE "users" ADD CONSTRAINT "email_not_null" CHECK ("email" IS NOT NULL) NOT VALID
	//   ALTER TABLE "users" VALIDATE CONSTRAINT "email_not_null"
	//   ALTER TABLE "users" ALTER COLUMN "email" SET NOT NULL
	//   ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "email_not_null"
	// PostgreSQL 18:
	//   ALTER TABLE "users" ADD CONSTRAINT "email_not_null" NOT NULL "email" NOT VALID
	//   ALTER TABLE "users" VALIDATE CONSTRAINT "email_not_null"
}
