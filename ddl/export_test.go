package ddl

import "github.com/schemashift/schemashift/internal/dialect/sqlite"

// OnStep installs a hook that runs after each recorded step; an error from
// it stops the run, as a crash between steps would.
func OnStep(e *Executor, fn func(op, step int) error) { e.onStep = fn }

// RenderSQLite returns o's statements on SQLite, up or down, without a
// database.
func RenderSQLite(o Op, down bool) ([]Statement, error) { return render(sqlite.Dialect{}, o, 0, down) }

// Guard describes a statement's column guard: "" when it has none.
func Guard(st Statement) string {
	if st.column == nil {
		return ""
	}
	if st.column.present {
		return "skip when " + st.column.table.String() + "." + st.column.name + " exists"
	}
	return "skip when " + st.column.table.String() + "." + st.column.name + " is gone"
}

// OnIntent installs a hook that runs once the record that a statement is
// about to make its object is written (committed, for a statement that
// runs outside a transaction; in the statement's transaction otherwise),
// before the statement runs; an error from it stops the run there.
func OnIntent(e *Executor, fn func(op, step int) error) { e.onIntent = fn }

// OnStatement installs a hook that runs once a statement ran, before its
// step is recorded done (before its transaction commits, when it has
// one); an error from it stops the run there.
func OnStatement(e *Executor, fn func(op, step int) error) { e.onStatement = fn }
