package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/ledger"
)

// HotQuery is a query of the service's hot path that touches the migrating
// tables. Its plan is recorded (EXPLAIN, without ANALYZE) before the expand
// and after each DDL step, and a changed plan shape — a sequential scan
// where there was an index scan, a new sort — is flagged in the audit
// trail and on the board. It is a value, part of a [Plan].
type HotQuery struct {
	Name string
	SQL  string
	Args []any
}

// QueryPlan is one recorded plan of a hot query. It is a value.
type QueryPlan struct {
	Migration string    `json:"migration"`
	Query     string    `json:"query"`
	When      string    `json:"when"` // the phase the DDL led to, or "before expand"
	Shape     []string  `json:"shape"`
	Changes   []string  `json:"changes,omitempty"` // against the previous plan
	At        time.Time `json:"at"`
}

// shapeChanges lists the nodes that appeared (+) and went (−).
func shapeChanges(before, after []string) []string {
	count := map[string]int{}
	for _, n := range before {
		count[n]--
	}
	for _, n := range after {
		count[n]++
	}
	var out []string
	for n, c := range count {
		for ; c > 0; c-- {
			out = append(out, "+ "+n)
		}
		for ; c < 0; c++ {
			out = append(out, "- "+n)
		}
	}
	slices.Sort(out)
	return out
}

// watchPlans records the plans of the plan's hot queries and flags those
// whose shape changed since the last record.
func (c *Coordinator) watchPlans(ctx context.Context, plan Plan, when, actor string) error {
	for _, q := range plan.HotQueries {
		shape, err := c.dialect.Explain(ctx, c.db, q.SQL, q.Args...)
		if err != nil {
			reason := fmt.Sprintf("explain %s: %v", q.Name, err)
			if err := c.record(ctx, ledger.Event{Migration: plan.Migration, Kind: "query-plan", Accepted: false, Actor: actor, Reason: reason}); err != nil {
				return err
			}
			continue
		}
		var prev *string
		if err := c.db.GetContext(ctx, &prev, c.dialect.LastQueryPlan(), plan.Migration, q.Name); err != nil {
			return fmt.Errorf("read query plans: %w", err)
		}
		var changes []string
		if prev != nil {
			var before []string
			if err := json.Unmarshal([]byte(*prev), &before); err != nil {
				return err
			}
			changes = shapeChanges(before, shape)
		}
		sj, _ := json.Marshal(shape)
		cj, _ := json.Marshal(changes)
		at := c.now()
		if _, err := c.db.ExecContext(ctx, c.dialect.RecordQueryPlan(), plan.Migration, q.Name, when, string(sj), string(cj), dialect.Stamp(at)); err != nil {
			return fmt.Errorf("record query plan: %w", err)
		}
		if len(changes) > 0 {
			if err := c.recordAt(ctx, ledger.Event{Migration: plan.Migration, Kind: "query-plan", Accepted: true, Actor: actor,
				Reason: fmt.Sprintf("plan of %s changed %s: %s", q.Name, when, strings.Join(changes, "; "))}, at); err != nil {
				return err
			}
		}
	}
	return nil
}

// QueryPlans reads the recorded plans of a migration's hot queries,
// oldest first.
func (c *Coordinator) QueryPlans(ctx context.Context, migration string) ([]QueryPlan, error) {
	var rows []struct {
		Query   string    `db:"query"`
		When    string    `db:"moment"`
		Shape   string    `db:"shape"`
		Changes string    `db:"changes"`
		At      time.Time `db:"at"`
	}
	if err := c.db.SelectContext(ctx, &rows, c.dialect.QueryPlans(), migration); err != nil {
		return nil, fmt.Errorf("read query plans: %w", err)
	}
	out := make([]QueryPlan, 0, len(rows))
	for _, r := range rows {
		p := QueryPlan{Migration: migration, Query: r.Query, When: r.When, At: r.At}
		_ = json.Unmarshal([]byte(r.Shape), &p.Shape)
		_ = json.Unmarshal([]byte(r.Changes), &p.Changes)
		out = append(out, p)
	}
	return out, nil
}
