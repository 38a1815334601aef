package backfill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/fragment"
	"github.com/schemashift/schemashift/internal/ident"
)

// Job describes one backfill: the table walked, chunk by chunk, in primary
// key order, and what each chunk does. Exactly one of Set, Into and Func
// says what a chunk does.
type Job struct {
	// Name identifies the job in schemashift_backfills: a job is resumed by
	// name, and a name whose definition changed is refused.
	Name string
	// Table is the table walked, "name" or "schema.name".
	Table string
	// Key lists the table's primary key columns in index order. Empty: read
	// from the catalog.
	Key []string

	// Set (SQL mode, same table) assigns each column an expression of the
	// row's old columns, in the rows no one has written (the columns are
	// all NULL; they must be nullable):
	//	UPDATE t SET c = expr … WHERE key in chunk AND c IS NULL … AND (c, …) IS DISTINCT FROM (expr, …)
	Set []Assign
	// Into (SQL mode, another table) inserts each row of the chunk that has
	// no target row yet into a new table.
	Into *Into
	// Func (Go mode) is called with each chunk's rows, read FOR UPDATE in
	// the transaction it writes in.
	Func ChunkFunc
	// Columns are the columns Func reads (the key is always read).
	Columns []string
	// Version names the behaviour of Func; change it when Func changes, so
	// that a job half done by the old Func is not silently resumed.
	Version string
	// Check, for a Go-mode job that moves rows into another table, says in
	// SQL what Func computes, so that [Backfill.Verify] can compare the two
	// tables inside the database and repair a row changed behind the
	// adapters' back. It also names the table Func fills: a source row
	// whose target row exists is not passed to Func.
	Check *Into
	// Fills, for a Go-mode job that fills columns of its own table, names
	// them: a row where any of them is not NULL is not passed to Func. A
	// Go-mode job gives Fills or Check, so that it never sees a row written
	// through the new path.
	Fills []string

	// Down is the inverse of the transform, old = down(new): each old
	// column (of Table) as an expression of the new shape's columns (Set's
	// columns, or the columns of the table moved to). Declare it when the
	// new shape holds more than the old one can express (given_name
	// "Mary Ann" and family_name "Smith Jones" are full_name "Mary Ann
	// Smith Jones", which Set splits as "Mary" and "Ann Smith Jones"): a
	// row whose old columns equal Down's expressions was written through
	// the new path and counts as consistent, and a row where neither
	// direction holds was changed behind the adapters' back and is
	// repaired. See the package doc for what each declaration guarantees.
	Down []Assign
	// Derived declares that the new path writes exactly what Set (or Into,
	// or Check) computes from the old columns (lower(email), say): a row
	// whose new shape differs was then changed behind the adapters' back,
	// and is repaired. Derived and Down exclude each other.
	Derived bool
}

// Assign sets Column to Expr. Column is an identifier and is quoted.
//
// Expr is SQL written by the job's author, in code, over the walked
// table's columns (lower(email), say), and is spliced into the chunk's
// statements between parentheses; it must never come from user input, as
// it may call any function. New checks it as PostgreSQL's own lexer, and
// the job's database, read it: one expression that reads the same to
// both (whatever standard_conforming_strings says) and cannot end early
// and take the rest of a statement (a chunk's span, its filter of rows
// no one wrote) with it. Refused, with an error that says why: a
// comment, a ';', a NUL byte, strings other than plain '…' (E'…', $$…$$,
// U&'…') and a backslash before a quote in one, a parameter ($1), a
// backtick, a parenthesis or bracket closed that it did not open or left
// open, and a comma outside parentheses; on PostgreSQL also a $ in a
// name (a driver that puts parameters in on the client, as pgx's simple
// protocol does, reads a parameter or a dollar quote there); on SQLite
// what it reads as a parameter (?, :name, @name, $name, @::name) and a
// quote between [ and ], which it reads as a name.
type Assign struct {
	Column string
	Expr   string
}

// Into moves rows into another table:
//
//	INSERT INTO into (c, …) SELECT expr, … FROM t WHERE key in chunk FOR UPDATE
//	ON CONFLICT (key) DO NOTHING
//
// A target row that exists is never rewritten: it was written through the
// new path, or by an earlier chunk. Locking the source rows makes the copy
// race-safe against dual writes: a row written while the chunk waits is
// copied as it is after that write, or, its target row written too, left.
type Into struct {
	Table string
	// Key is the target's conflict key (its primary key or a unique key).
	// For verification, each key column's Expr must be the matching source
	// key column's name.
	Key     []string
	Columns []Assign
}

// ChunkFunc does a Go-mode chunk's work in tx and returns how many rows it
// changed. rows holds the chunk's rows (column name to value), locked FOR
// UPDATE until tx commits. (On SQLite, tx holds the database's write lock from
// BEGIN, so no other writer can change them either.)
type ChunkFunc func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error)

// ErrInvalidJob is wrapped by every job validation error.
var ErrInvalidJob = errors.New("invalid backfill job")

// validate checks the job, its expressions as the database d reads
// them (see checkExpr).
func (j Job) validate(d dialect.Rendering) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidJob, j.Name, fmt.Sprintf(format, args...))
	}
	if j.Name == "" {
		return fmt.Errorf("%w: name is empty", ErrInvalidJob)
	}
	if len(j.Name) > 200 {
		return fail("name is over 200 bytes")
	}
	if _, err := ident.ParseTable(j.Table); err != nil {
		return fail("%v", err)
	}
	for _, k := range j.Key {
		if err := ident.Check(k); err != nil {
			return fail("key: %v", err)
		}
	}
	modes := 0
	if len(j.Set) > 0 {
		modes++
		if err := checkAssigns(j.Set, d); err != nil {
			return fail("set: %v", err)
		}
	}
	if j.Into != nil {
		modes++
		if _, err := ident.ParseTable(j.Into.Table); err != nil {
			return fail("into: %v", err)
		}
		if len(j.Into.Key) == 0 {
			return fail("into: conflict key is empty")
		}
		if len(j.Into.Columns) == 0 {
			return fail("into: no columns")
		}
		if err := checkAssigns(j.Into.Columns, d); err != nil {
			return fail("into: %v", err)
		}
		for _, k := range j.Into.Key {
			if err := ident.Check(k); err != nil {
				return fail("into key: %v", err)
			}
			if _, ok := assignOf(j.Into.Columns, k); !ok {
				return fail("into: key column %q has no expression", k)
			}
		}
		if len(j.Into.Columns) == len(j.Into.Key) {
			return fail("into: no column besides the key")
		}
	}
	if j.Func != nil {
		modes++
		if j.Version == "" {
			return fail("a Go-mode job needs a Version, so that a change of Func is not silently resumed")
		}
		for _, c := range j.Columns {
			if err := ident.Check(c); err != nil {
				return fail("columns: %v", err)
			}
		}
		if j.Check != nil {
			if _, err := ident.ParseTable(j.Check.Table); err != nil {
				return fail("check: %v", err)
			}
			if err := checkAssigns(j.Check.Columns, d); err != nil {
				return fail("check: %v", err)
			}
		}
	}
	if modes != 1 {
		return fail("exactly one of Set, Into and Func must be given (got %d)", modes)
	}
	return j.validateProvenance(fail, d)
}

// validateProvenance checks what the job declares of the rows written
// through the new path (Fills, Down, Derived).
func (j Job) validateProvenance(fail func(format string, args ...any) error, d dialect.Rendering) error {
	for _, c := range j.Fills {
		if err := ident.Check(c); err != nil {
			return fail("fills: %v", err)
		}
	}
	if j.Func != nil {
		switch {
		case j.Check == nil && len(j.Fills) == 0:
			return fail("a Go-mode job names what it fills, Fills (columns of its table) or Check (the table it moves rows to), so that it is never given a row written through the new path")
		case j.Check != nil && len(j.Fills) > 0:
			return fail("a Go-mode job gives Fills or Check, not both")
		}
	} else if len(j.Fills) > 0 {
		return fail("fills: only a Go-mode job names what it fills (Set's columns and Into's table say it already)")
	}
	if len(j.Down) == 0 && !j.Derived {
		return nil
	}
	if len(j.Down) > 0 && j.Derived {
		return fail("Down and Derived exclude each other: Derived says a row the new path wrote always equals what the job computes, so Down would never be read")
	}
	if j.Func != nil && j.Check == nil {
		return fail("down and derived need a shape verification can compare: Set, Into, or Check")
	}
	if err := checkAssigns(j.Down, d); err != nil {
		return fail("down: %v", err)
	}
	for _, d := range j.Down {
		if _, ok := assignOf(j.Set, d.Column); ok {
			return fail("down: column %q is one Set fills, not an old column", d.Column)
		}
	}
	return nil
}

// move is the table a job moves rows into, or nil for a same-table job.
func (j Job) move() *Into {
	if j.Into != nil {
		return j.Into
	}
	return j.Check
}

func checkAssigns(as []Assign, d dialect.Rendering) error {
	seen := map[string]bool{}
	for _, a := range as {
		if err := ident.Check(a.Column); err != nil {
			return err
		}
		if seen[a.Column] {
			return fmt.Errorf("column %q assigned twice", a.Column)
		}
		seen[a.Column] = true
		if err := checkExpr(a.Expr, d); err != nil {
			return fmt.Errorf("column %q: %w", a.Column, err)
		}
	}
	return nil
}

// checkExpr refuses what cannot be one expression in the statements it
// goes into, as PostgreSQL's lexer and d read it (see
// [fragment.Expression]):
// anything that ends a string, a name or a comment at another place for
// one of the databases than a plain reading of its quotes says (E'\”,
// $$'$$, a quote in a "name", which SQLite reads as a string when it names
// no column), a comment, a ';', a parameter, a parenthesis it did not
// open, a comma outside parentheses. Each could end the expression early
// and take the rest of a chunk's statement (its span and its filter of
// rows no one wrote) with it.
func checkExpr(e string, d dialect.Rendering) error {
	if why := fragment.Expression(e, []dialect.Rendering{d}); why != "" {
		return fmt.Errorf("expression %q %s", fragment.Short(e), why)
	}
	return nil
}

func assignOf(as []Assign, column string) (Assign, bool) {
	for _, a := range as {
		if a.Column == column {
			return a, true
		}
	}
	return Assign{}, false
}

// hash identifies the job's definition: what a chunk does over which rows.
// Throttling and worker settings are not part of it.
func (j Job) hash(key []string) string {
	def := struct {
		Table   string
		Key     []string
		Set     []Assign
		Into    *Into
		Columns []string
		Version string
		GoMode  bool
		Check   *Into
		Fills   []string `json:",omitempty"`
		Down    []Assign `json:",omitempty"`
		Derived bool     `json:",omitempty"`
	}{j.Table, key, j.Set, j.Into, j.Columns, j.Version, j.Func != nil, j.Check, j.Fills, j.Down, j.Derived}
	b, _ := json.Marshal(def)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
