package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

// Explain implements [dialect.Catalog]: EXPLAIN (FORMAT JSON), each node
// as its type, " on " its relation and " using " its index where it has
// them: "Index Scan on users using users_pkey".
func (Dialect) Explain(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) ([]string, error) {
	var raw string
	if err := sqlx.GetContext(ctx, q, &raw, "EXPLAIN (FORMAT JSON) "+query, args...); err != nil {
		return nil, err
	}
	var doc []struct {
		Plan json.RawMessage `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return nil, fmt.Errorf("unreadable plan: %w", err)
	}
	if len(doc) == 0 {
		return nil, errors.New("unreadable plan: no plan in the output")
	}
	var shape []string
	var walk func(json.RawMessage) error
	walk = func(m json.RawMessage) error {
		var n struct {
			Type     string            `json:"Node Type"`
			Relation string            `json:"Relation Name"`
			Index    string            `json:"Index Name"`
			Plans    []json.RawMessage `json:"Plans"`
		}
		if err := json.Unmarshal(m, &n); err != nil {
			return fmt.Errorf("unreadable plan: %w", err)
		}
		s := n.Type
		if n.Relation != "" {
			s += " on " + n.Relation
		}
		if n.Index != "" {
			s += " using " + n.Index
		}
		shape = append(shape, s)
		for _, c := range n.Plans {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(doc[0].Plan); err != nil {
		return nil, err
	}
	return shape, nil
}

// Runbook implements [dialect.Dialect]: DDL runs in its safe forms, each
// statement with a short lock_timeout, retried.
func (Dialect) Runbook() dialect.Runbook {
	return dialect.Runbook{
		DDL:      ", each statement with a short lock_timeout, retried on lock timeouts",
		LockWait: "A lock timeout means a long transaction holds the table; find it in pg_stat_activity and retry.",
	}
}
