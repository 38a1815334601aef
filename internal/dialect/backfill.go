package dialect

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/ident"
)

// What a backfill and its verification need beyond dialect.go: keys and
// rows as text, values typed as a target column, chunk checksums, the key
// histogram verification splits on, and the replication lag a backfill
// throttles on.

// Text is expr as text. Keys travel between chunks as text, and divergent
// rows are shown as text.
func (d *Dialect) Text(expr string) string {
	if d.sqlite {
		return "CAST(" + expr + " AS text)"
	}
	return expr + "::text"
}

// AsColumn is expr as a value of a column of type typ (as [Columns] names
// it), for comparison with that column. SQLite's CAST is not how a column
// stores a value (CAST('2020-01-01' AS date) is 2020, where a date column
// keeps the text), so there expr stays as it is and the comparison applies
// the column's affinity, as storing it would.
func (d *Dialect) AsColumn(expr, typ string) string {
	if d.sqlite {
		return expr
	}
	return "CAST(" + expr + " AS " + typ + ")"
}

// RowChecksum is an aggregate over a query's rows: the text of the sum of
// a hash of each row value of exprs, so that two sets of rows can be
// compared without moving them. ok is false where the database has no hash
// function (SQLite): compare the rows themselves there.
func (d *Dialect) RowChecksum(exprs ...string) (agg string, ok bool) {
	if d.sqlite {
		return "", false
	}
	return "coalesce(sum(hashtextextended(" + d.Text(d.Row(exprs...)) + ", 0)), 0)::text", true
}

// KeyHistogram reads the planner's histogram of column col (of type typ,
// as [Columns] names it) of t: the bounds of buckets holding about the
// same number of rows, as text in key order, and the estimated row count.
// No bounds when the table was never analyzed, and none on SQLite, which
// keeps no histograms: split by walking the key there.
func (d *Dialect) KeyHistogram(ctx context.Context, q sqlx.QueryerContext, t ident.Table, col, typ string) (bounds []string, rows float64, err error) {
	if d.sqlite {
		return nil, 0, nil
	}
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

// CheckReplication says whether [Dialect.ReplicationLag] can be read: an
// error wrapping errors.ErrUnsupported on SQLite, an embedded database
// without replicas.
func (d *Dialect) CheckReplication() error {
	if d.sqlite {
		return fmt.Errorf("replication lag: %w on %s: an embedded database has no replicas", errors.ErrUnsupported, d)
	}
	return nil
}

// ReplicationLag is the largest replay lag of the primary's replicas, as
// the primary sees it (zero without replicas).
func (d *Dialect) ReplicationLag(ctx context.Context, q sqlx.QueryerContext) (time.Duration, error) {
	if err := d.CheckReplication(); err != nil {
		return 0, err
	}
	var secs float64
	if err := sqlx.GetContext(ctx, q, &secs, `SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication`); err != nil {
		return 0, fmt.Errorf("read replication lag: %w", err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}
