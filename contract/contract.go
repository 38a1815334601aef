// Package contract states what schema a build of a service needs and checks
// it against the live catalog.
//
// A [Schema] lists tables with the columns (type and nullability) and
// indexes a build relies on, and the columns that must be gone after a
// contract. [Verify] reads the catalog and returns one [MismatchError]
// listing every unmet requirement, so a service refuses to start against a
// database it does not fit (the rollout startup hook calls it). Package
// contracttest proves, in unit tests, that a mixed fleet agrees: it runs a
// scenario under every stage and every pair of adjacent stages.
package contract

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

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

// Verify checks s against the live catalog and returns a *MismatchError
// naming every unmet requirement, or nil.
func Verify(ctx context.Context, db sqlx.QueryerContext, s Schema) error {
	var problems []string
	for _, t := range s.Tables {
		p, err := verifyTable(ctx, db, t)
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

type catalogColumn struct {
	Name    string `db:"attname"`
	Type    string `db:"type"`
	NotNull bool   `db:"attnotnull"`
}

func verifyTable(ctx context.Context, db sqlx.QueryerContext, t Table) ([]string, error) {
	tbl, err := ident.ParseTable(t.Name)
	if err != nil {
		return nil, fmt.Errorf("verify schema: table %q: %w", t.Name, err)
	}
	var exists bool
	if err := sqlx.GetContext(ctx, db, &exists, `SELECT to_regclass($1) IS NOT NULL`, tbl.Quoted()); err != nil {
		return nil, fmt.Errorf("verify schema: %w", err)
	}
	if !exists {
		return []string{fmt.Sprintf("table %s is missing", t.Name)}, nil
	}
	var cols []catalogColumn
	if err := sqlx.SelectContext(ctx, db, &cols, `SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
		FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, tbl.Quoted()); err != nil {
		return nil, fmt.Errorf("verify schema: columns of %s: %w", t.Name, err)
	}
	byName := map[string]catalogColumn{}
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
		if want.Type != "" && normalizeType(want.Type) != normalizeType(got.Type) {
			problems = append(problems, fmt.Sprintf("column %s.%s is %s, want %s", t.Name, want.Name, got.Type, want.Type))
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
		p, err := verifyIndexes(ctx, db, t, tbl)
		if err != nil {
			return nil, err
		}
		problems = append(problems, p...)
	}
	return problems, nil
}

func verifyIndexes(ctx context.Context, db sqlx.QueryerContext, t Table, tbl ident.Table) ([]string, error) {
	var idx []struct {
		Name    string `db:"name"`
		Columns string `db:"columns"`
		Unique  bool   `db:"indisunique"`
		Valid   bool   `db:"indisvalid"`
	}
	if err := sqlx.SelectContext(ctx, db, &idx, `SELECT c.relname AS name, i.indisunique, i.indisvalid,
			coalesce((SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), '') AS columns
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass($1)`, tbl.Quoted()); err != nil {
		return nil, fmt.Errorf("verify schema: indexes of %s: %w", t.Name, err)
	}
	var problems []string
	for _, want := range t.Indexes {
		found := false
		for _, got := range idx {
			if want.Name != "" && got.Name != want.Name {
				continue
			}
			if len(want.Columns) > 0 && got.Columns != strings.Join(want.Columns, ",") {
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

// normalizeType maps common spellings to PostgreSQL's format_type names.
func normalizeType(t string) string {
	t = strings.ToLower(strings.Join(strings.Fields(t), " "))
	t = strings.ReplaceAll(t, ", ", ",")
	aliases := map[string]string{
		"int": "integer", "int4": "integer", "int8": "bigint", "int2": "smallint", "serial": "integer", "bigserial": "bigint",
		"bool": "boolean", "float8": "double precision", "float4": "real", "timestamptz": "timestamp with time zone",
		"timestamp": "timestamp without time zone", "timetz": "time with time zone", "time": "time without time zone",
		"varchar": "character varying", "char": "character", "decimal": "numeric",
	}
	base, args, _ := strings.Cut(t, "(")
	if a, ok := aliases[strings.TrimSpace(base)]; ok {
		base = a
	}
	if strings.HasPrefix(base, "varchar") {
		base = "character varying"
	}
	if args != "" {
		return strings.TrimSpace(base) + "(" + args
	}
	return strings.TrimSpace(base)
}
