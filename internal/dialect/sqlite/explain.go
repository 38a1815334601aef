package sqlite

import (
	"context"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

// Explain implements [dialect.Catalog]: EXPLAIN QUERY PLAN, whose steps
// say in words what PostgreSQL's nodes do: "SCAN users", "SEARCH users
// USING INDEX users_email (email=?)".
func (Dialect) Explain(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) ([]string, error) {
	var steps []struct {
		ID     int64  `db:"id"`
		Parent int64  `db:"parent"`
		Unused int64  `db:"notused"`
		Detail string `db:"detail"`
	}
	if err := sqlx.SelectContext(ctx, q, &steps, "EXPLAIN QUERY PLAN "+query, args...); err != nil {
		return nil, err
	}
	shape := make([]string, len(steps))
	for i, s := range steps {
		shape[i] = s.Detail
	}
	return shape, nil
}

// Runbook implements [dialect.Dialect]: DDL runs in its plain forms,
// waiting for the write lock as any writer does, and some operations
// cannot run at all.
func (Dialect) Runbook() dialect.Runbook {
	return dialect.Runbook{
		DDL: " on SQLite, each statement waiting for the database write lock (busy_timeout); " +
			"the PostgreSQL-only safety steps run in their plain form, as each comment says",
		LockWait: "\"database is locked\" means a writer held the write lock past busy_timeout; retry when it is done.",
		Unsupported: "An operation SQLite cannot run (a foreign key, a check, SET NOT NULL on an existing column) " +
			"has to leave the plan.",
	}
}
