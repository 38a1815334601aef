package ddl

import "github.com/schemashift/schemashift/internal/dialect"

// OnStep installs a hook that runs after each recorded step; an error from
// it stops the run, as a crash between steps would.
func OnStep(e *Executor, fn func(op, step int) error) { e.onStep = fn }

// RenderSQLite returns o's statements on SQLite, up or down, without a
// database.
func RenderSQLite(o Op, down bool) ([]Statement, error) { return render(dialect.SQLite, o, 0, down) }

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
