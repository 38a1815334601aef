// Package postgres is the [dialect.Dialect] of PostgreSQL 14 and later,
// through pgx's database/sql driver: its SQL fragments, catalog reads,
// advisory locks and session timeouts.
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialect/common"
	"github.com/schemashift/schemashift/internal/ident"
)

// Dialect is PostgreSQL's. Its zero value is ready; it holds no state and
// is safe for concurrent use.
type Dialect struct {
	common.Ledger
	common.Fleet
	common.Rollout
	common.DDL
	common.Backfill
	common.Aggregates
	common.Schedules
}

var _ dialect.Dialect = Dialect{}

// New returns PostgreSQL's dialect.
func New() dialect.Dialect { return Dialect{} }

func (Dialect) String() string { return "postgres" }

// FoldName implements [dialect.Rendering]: quoted names compare exactly.
func (Dialect) FoldName(name string) string { return name }

// TypeProblem implements [dialect.Rendering]: types compare by their
// canonical names.
func (Dialect) TypeProblem(want, got string) string {
	if dialect.NormalizeType(want) != dialect.NormalizeType(got) {
		return fmt.Sprintf("%s, want %s", got, want)
	}
	return ""
}

// MisreadIn implements [dialect.Rendering]: PostgreSQL's parameters,
// $n, are refused in every fragment already; a $ inside a name is
// refused too, as a driver that puts parameters in on the client (pgx's
// simple protocol) reads a $ and a digit there as a parameter, and a$b$
// as the start of a dollar-quoted string: an attack review's
// (SELECT email AS a$b$) || '$b$ $1 $c$' || … had a key value put where
// the server reads code.
func (Dialect) MisreadIn(s string, start, end int) string {
	if strings.Contains(s[start:end], "$") {
		return fmt.Sprintf("holds a $ in %q (a driver that puts parameters in on the client may read a parameter or a dollar quote there)", s[start:end])
	}
	return ""
}

// SearchPath implements [dialect.Capabilities].
func (Dialect) SearchPath() bool { return true }

// ConcurrentIndexes implements [dialect.Capabilities].
func (Dialect) ConcurrentIndexes() bool { return true }

// PlainDDL implements [dialect.Capabilities]: DDL runs in its safe
// forms, each statement with a short lock_timeout, retried.
func (Dialect) PlainDDL() bool { return false }

// CurrentTime implements [dialect.Catalog].
func (Dialect) CurrentTime(ctx context.Context, q sqlx.QueryerContext) (time.Time, error) {
	var t time.Time
	err := sqlx.GetContext(ctx, q, &t, `SELECT now()`)
	return t, err
}

// TableExists implements [dialect.Catalog].
func (Dialect) TableExists(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (bool, error) {
	var exists bool
	err := sqlx.GetContext(ctx, q, &exists, `SELECT to_regclass($1) IS NOT NULL`, t.Quoted())
	return exists, err
}

// Columns implements [dialect.Catalog].
func (Dialect) Columns(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]dialect.Column, error) {
	var cols []dialect.Column
	// From 18 on, attnotnull is also true for a NOT NULL constraint added
	// NOT VALID (or left so by a failed VALIDATE), under which old rows
	// may still be NULL: only a validated one counts (before 18,
	// pg_constraint holds no NOT NULL constraints, contype 'n').
	err := sqlx.SelectContext(ctx, q, &cols, `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
			a.attnotnull AND NOT EXISTS (SELECT 1 FROM pg_constraint n WHERE n.conrelid = a.attrelid
				AND n.contype = 'n' AND n.conkey = ARRAY[a.attnum] AND NOT n.convalidated) AS not_null,
			coalesce(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0) AS key
		FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, t.Quoted())
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t, err)
	}
	return cols, nil
}

// Indexes implements [dialect.Catalog].
func (Dialect) Indexes(ctx context.Context, q sqlx.QueryerContext, t ident.Table) ([]dialect.Index, error) {
	var rows []dialect.IndexRow
	err := sqlx.SelectContext(ctx, q, &rows, `SELECT c.relname AS name, i.indisunique AS is_unique, i.indisvalid AS is_valid,
			coalesce((SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), '') AS columns
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass($1)`, t.Quoted())
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", t, err)
	}
	return dialect.IndexesOf(rows), nil
}

// EstimateRows implements [dialect.Catalog]: reltuples, -1 (or 0 before
// PostgreSQL 14) when the table was never analyzed.
func (Dialect) EstimateRows(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (int64, error) {
	var n float64
	err := sqlx.GetContext(ctx, q, &n, `SELECT reltuples FROM pg_class WHERE oid = $1::regclass`, t.Quoted())
	return int64(n), err
}

// ServerMajor implements [dialect.Catalog] (PostgreSQL 18 adds NOT NULL
// constraints NOT VALID).
func (Dialect) ServerMajor(ctx context.Context, q sqlx.QueryerContext) (int, error) {
	var v int
	if err := sqlx.GetContext(ctx, q, &v, `SELECT current_setting('server_version_num')::int`); err != nil {
		return 0, fmt.Errorf("read server version: %w", err)
	}
	return v / 10000, nil
}

// KeyHistogram implements [dialect.Catalog] from pg_stats.
func (Dialect) KeyHistogram(ctx context.Context, q sqlx.QueryerContext, t ident.Table, col, typ string) (bounds []string, rows float64, err error) {
	var raw sql.NullString
	err = q.QueryRowxContext(ctx, `SELECT (SELECT array_to_json(array_agg(v ORDER BY v))::text
			FROM unnest(s.histogram_bounds::text::`+typ+`[]) v), c.reltuples
		FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
		LEFT JOIN pg_stats s ON s.schemaname = ns.nspname AND s.tablename = c.relname AND s.attname = $2
		WHERE c.oid = $1::regclass`, t.Quoted(), col).Scan(&raw, &rows)
	if err != nil {
		return nil, 0, fmt.Errorf("read key histogram of %s: %w", t, err)
	}
	var values []json.RawMessage
	if !raw.Valid || json.Unmarshal([]byte(raw.String), &values) != nil {
		return nil, rows, nil
	}
	bounds = make([]string, len(values))
	for i, v := range values {
		bounds[i] = jsonText(v)
	}
	return bounds, rows, nil
}

// jsonText returns a JSON scalar as PostgreSQL's text of it.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// CheckReplication implements [dialect.Catalog]: the lag can be read.
func (Dialect) CheckReplication() error { return nil }

// ReplicationLag implements [dialect.Catalog] from pg_stat_replication.
func (Dialect) ReplicationLag(ctx context.Context, q sqlx.QueryerContext) (time.Duration, error) {
	var secs float64
	if err := sqlx.GetContext(ctx, q, &secs, `SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication`); err != nil {
		return 0, fmt.Errorf("read replication lag: %w", err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// RelationExists implements [dialect.Objects].
func (Dialect) RelationExists(ctx context.Context, q sqlx.QueryerContext, t ident.Table, name string) (bool, error) {
	var found bool
	err := sqlx.GetContext(ctx, q, &found, `SELECT to_regclass($1) IS NOT NULL`, ident.Table{Schema: t.Schema, Name: name}.Quoted())
	return found, err
}

// ColumnShape implements [dialect.Objects].
func (Dialect) ColumnShape(ctx context.Context, q sqlx.QueryerContext, t ident.Table, name string) ([]dialect.ColumnShape, error) {
	var have []dialect.ColumnShape
	err := sqlx.SelectContext(ctx, q, &have, `SELECT format_type(a.atttypid, a.atttypmod) AS type, a.atthasdef AS has_default, a.attnotnull AS not_null,
			CASE WHEN a.attcollation <> ty.typcollation THEN (SELECT collname::text FROM pg_collation WHERE oid = a.attcollation) END AS collation
		FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
		WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, t.Quoted(), name)
	return have, err
}

// IsTable implements [dialect.Objects]: a plain or a partitioned table.
func (Dialect) IsTable(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (string, error) {
	var kind string
	if err := sqlx.GetContext(ctx, q, &kind, `SELECT relkind FROM pg_class WHERE oid = to_regclass($1)`, t.Quoted()); err != nil {
		return "", err
	}
	if kind != "r" && kind != "p" {
		return fmt.Sprintf("a relation of kind %q", kind), nil
	}
	return "", nil
}

// IndexDef implements [dialect.Objects] with pg_get_indexdef.
func (Dialect) IndexDef(ctx context.Context, q sqlx.QueryerContext, index, t ident.Table) ([]dialect.IndexDef, error) {
	var def []dialect.IndexDef
	err := sqlx.SelectContext(ctx, q, &def, `SELECT pg_get_indexdef(i.indexrelid) AS def, i.indrelid = to_regclass($2) AS on_table
		FROM pg_index i WHERE i.indexrelid = to_regclass($1)`, index.Quoted(), t.Quoted())
	return def, err
}

// IndexState implements [dialect.Objects].
func (Dialect) IndexState(ctx context.Context, q sqlx.QueryerContext, index, t ident.Table) (dialect.IndexState, error) {
	var rows []struct {
		Index   bool         `db:"is_index"`
		Valid   sql.NullBool `db:"valid"`
		OnTable sql.NullBool `db:"on_table"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT c.relkind = 'i' AS is_index, i.indisvalid AS valid, i.indrelid = to_regclass($2) AS on_table
		FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE c.oid = to_regclass($1)`, index.Quoted(), t.Quoted()); err != nil {
		return 0, err
	}
	switch {
	case len(rows) == 0:
		return dialect.IndexAbsent, nil
	case !rows[0].Index || !rows[0].OnTable.Bool:
		return dialect.IndexOther, nil
	case rows[0].Valid.Bool:
		return dialect.IndexValid, nil
	}
	return dialect.IndexInvalid, nil
}

// ResolveSchema implements [dialect.Objects]: the schema t is in, or the
// one CREATE TABLE would put it in.
func (Dialect) ResolveSchema(ctx context.Context, q sqlx.QueryerContext, t ident.Table) (sql.NullString, error) {
	var now sql.NullString
	err := sqlx.GetContext(ctx, q, &now, `SELECT coalesce((SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)), current_schema()::text)`, t.Quoted())
	return now, err
}

// DropInvalidIndex implements [dialect.Sessions]: CREATE INDEX … IF NOT
// EXISTS would otherwise keep an INVALID index and report success.
func (Dialect) DropInvalidIndex(ctx context.Context, c dialect.Conn, name ident.Table) error {
	var invalid sql.NullBool
	if err := sqlx.GetContext(ctx, c, &invalid, `SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`, name.Quoted()); err != nil &&
		!errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check index %s: %w", name, err)
	}
	if invalid.Valid && invalid.Bool {
		if _, err := c.ExecContext(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+name.Quoted()); err != nil {
			return fmt.Errorf("drop invalid index %s: %w", name, err)
		}
	}
	return nil
}

// Driver says how [Dialect] is recognised: the names pgx's database/sql
// driver registers, the Go package of its driver and connection types,
// and a probe that succeeds on every PostgreSQL server (and fails on
// SQLite, which has no current_setting).
func Driver() dialect.Driver {
	return dialect.Driver{
		Dialect: Dialect{},
		Names:   []string{"pgx", "pgx/v5"},
		Package: "github.com/jackc/pgx/v5/stdlib",
		Probe:   `SELECT pg_catalog.current_setting('server_version_num')`,
	}
}

// CheckBegin implements [dialect.RolloutQueries]: the savepoint's reads
// only, with the check's timeout as the statement timeout (both undone
// when it is rolled back).
func (Dialect) CheckBegin(timeout time.Duration) []string {
	return []string{`SAVEPOINT schemashift_check`, `SET LOCAL transaction_read_only = on`,
		fmt.Sprintf(`SET LOCAL statement_timeout = %d`, max(timeout.Milliseconds(), 1))}
}
