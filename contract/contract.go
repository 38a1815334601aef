package contract

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/ident"
)

// Schema is what one build requires of the database.
type Schema struct {
	Tables []Table
}

// Table is one table's requirements.
type Table struct {
	Name    string // "name" or "schema.name"
	Columns []Column
	Indexes []Index
	// Absent lists columns that must not exist (dropped by a contract).
	Absent []string
}

// Column is one required column.
type Column struct {
	Name string
	// Type as PostgreSQL writes it, or a common alias (int, bigint, text,
	// varchar(n), timestamptz, numeric(p,s), jsonb, uuid, …); empty: any.
	// On SQLite only its type affinity is compared (see [Verify]).
	Type string
	// Nullable, when set, requires the column to allow NULL (true) or not
	// (false).
	Nullable *bool
}

// Index is one required index, by name or by its columns.
type Index struct {
	Name    string
	Columns []string // in order; empty with Name: any columns
	Unique  bool
}

// Nullable and NotNull are for [Column.Nullable].
var (
	Nullable = ptr(true)
	NotNull  = ptr(false)
)

func ptr(b bool) *bool { return &b }

// ErrMismatch is wrapped by a [MismatchError].
var ErrMismatch = errors.New("schema does not meet the build's requirements")

// MismatchError lists every unmet requirement.
type MismatchError struct {
	Problems []string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s:\n  - %s", ErrMismatch, strings.Join(e.Problems, "\n  - "))
}

// Unwrap returns [ErrMismatch].
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Verify checks s against the live catalog of db, a PostgreSQL or SQLite
// pool, connection or transaction (told apart by its driver, or a
// transaction by what its database answers; an unknown driver is refused,
// never read as PostgreSQL), and returns a *MismatchError naming every
// unmet requirement, or nil.
//
// On SQLite a column's type is compared by type affinity, the only type a
// SQLite column has: the wanted type, read as PostgreSQL would (so serial
// is integer), and the declared type must have the same affinity. A
// contract's bigint is met by a column declared INTEGER; text is not. A
// table's primary key counts as a unique index on its columns, on SQLite
// too, where an INTEGER PRIMARY KEY is the table's own key, with no index
// (nor a name to be required by) of its own, and is NOT NULL.
func Verify(ctx context.Context, db DB, s Schema) error {
	h, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return fmt.Errorf("verify schema: %w", err)
	}
	var problems []string
	for _, t := range s.Tables {
		p, err := verifyTable(ctx, d, h, t)
		if err != nil {
			return err
		}
		problems = append(problems, p...)
	}
	if len(problems) > 0 {
		return &MismatchError{Problems: problems}
	}
	return nil
}

// Verify is [Verify] of s.
func (s Schema) Verify(ctx context.Context, db DB) error { return Verify(ctx, db, s) }

func verifyTable(ctx context.Context, d dialect.Dialect, db sqlx.QueryerContext, t Table) ([]string, error) {
	tbl, err := ident.ParseTable(t.Name)
	if err != nil {
		return nil, fmt.Errorf("verify schema: table %q: %w", t.Name, err)
	}
	exists, err := d.TableExists(ctx, db, tbl)
	if err != nil {
		return nil, fmt.Errorf("verify schema: %w", err)
	}
	if !exists {
		return []string{fmt.Sprintf("table %s is missing", t.Name)}, nil
	}
	cols, err := d.Columns(ctx, db, tbl)
	if err != nil {
		return nil, fmt.Errorf("verify schema: %w", err)
	}
	byName := map[string]dialect.Column{}
	for _, c := range cols {
		byName[c.Name] = c
	}
	var problems []string
	for _, want := range t.Columns {
		got, ok := byName[want.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("column %s.%s is missing", t.Name, want.Name))
			continue
		}
		if want.Type != "" {
			if p := d.TypeProblem(want.Type, got.Type); p != "" {
				problems = append(problems, fmt.Sprintf("column %s.%s is %s", t.Name, want.Name, p))
			}
		}
		if want.Nullable != nil && *want.Nullable == got.NotNull {
			have, need := "NOT NULL", "nullable"
			if !got.NotNull {
				have, need = "nullable", "NOT NULL"
			}
			problems = append(problems, fmt.Sprintf("column %s.%s is %s, want %s", t.Name, want.Name, have, need))
		}
	}
	for _, gone := range t.Absent {
		if _, ok := byName[gone]; ok {
			problems = append(problems, fmt.Sprintf("column %s.%s still exists, want it dropped", t.Name, gone))
		}
	}
	if len(t.Indexes) > 0 {
		p, err := verifyIndexes(ctx, d, db, t, tbl)
		if err != nil {
			return nil, err
		}
		problems = append(problems, p...)
	}
	return problems, nil
}

func verifyIndexes(ctx context.Context, d dialect.Dialect, db sqlx.QueryerContext, t Table, tbl ident.Table) ([]string, error) {
	idx, err := d.Indexes(ctx, db, tbl)
	if err != nil {
		return nil, fmt.Errorf("verify schema: %w", err)
	}
	var problems []string
	for _, want := range t.Indexes {
		found := false
		for _, got := range idx {
			if want.Name != "" && got.Name != want.Name {
				continue
			}
			if len(want.Columns) > 0 && strings.Join(got.Columns, ",") != strings.Join(want.Columns, ",") {
				continue
			}
			if want.Unique && !got.Unique {
				continue
			}
			if !got.Valid {
				problems = append(problems, fmt.Sprintf("index %s on %s is INVALID (a failed concurrent build); drop and rebuild it", got.Name, t.Name))
			}
			found = true
			break
		}
		if !found {
			desc := want.Name
			if len(want.Columns) > 0 {
				desc = strings.TrimSpace(desc + " (" + strings.Join(want.Columns, ", ") + ")")
			}
			if want.Unique {
				desc = "unique " + desc
			}
			problems = append(problems, fmt.Sprintf("index %s on %s is missing", desc, t.Name))
		}
	}
	return problems, nil
}
