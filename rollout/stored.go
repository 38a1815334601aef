package rollout

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/ledger"
)

// planDoc is a plan as the ledger stores it, so that processes without the
// plan's code (the CLI, a status board) can coordinate it.
type planDoc struct {
	Migration   string            `json:"migration"`
	ExpandOps   json.RawMessage   `json:"expand_ops,omitempty"`
	Expand      []Step            `json:"expand,omitempty"`
	Columns     []Column          `json:"columns,omitempty"`
	Backfills   []jobDoc          `json:"backfills,omitempty"`
	ContractOps json.RawMessage   `json:"contract_ops,omitempty"`
	Contract    []Step            `json:"contract,omitempty"`
	Thresholds  Thresholds        `json:"thresholds"`
	Guardrails  []Guardrail       `json:"guardrails,omitempty"`
	HotQueries  []HotQuery        `json:"hot_queries,omitempty"`
	Requires    []Requirement     `json:"requires,omitempty"`
	Owner       string            `json:"owner,omitempty"`
	Policies    []Policy          `json:"policies,omitempty"`
	Aggregates  []Aggregate       `json:"aggregates,omitempty"`
	Checks      []Check           `json:"checks,omitempty"`
	Sunset      Sunset            `json:"sunset,omitzero"`
	RunWindows  []backfill.Window `json:"run_windows,omitempty"`
}

type jobDoc struct {
	Name    string            `json:"name"`
	Table   string            `json:"table"`
	Key     []string          `json:"key,omitempty"`
	Set     []backfill.Assign `json:"set,omitempty"`
	Into    *backfill.Into    `json:"into,omitempty"`
	Columns []string          `json:"columns,omitempty"`
	Version string            `json:"version,omitempty"`
	GoMode  bool              `json:"go_mode,omitempty"`
	Check   *backfill.Into    `json:"check,omitempty"`
	Fills   []string          `json:"fills,omitempty"`
	Down    []backfill.Assign `json:"down,omitempty"`
	Derived bool              `json:"derived,omitempty"`
}

func (p Plan) document() ([]byte, error) {
	d := planDoc{Migration: p.Migration, Expand: p.Expand, Columns: p.Columns, Contract: p.Contract, Thresholds: p.Thresholds, Guardrails: p.Guardrails, HotQueries: p.HotQueries, Requires: p.Requires, Owner: p.Owner, Policies: p.Policies, Aggregates: p.Aggregates, Checks: p.Checks, Sunset: p.Sunset, RunWindows: p.RunWindows}
	var err error
	if len(p.ExpandOps) > 0 {
		if d.ExpandOps, err = ddl.MarshalOps(p.ExpandOps); err != nil {
			return nil, err
		}
	}
	if len(p.ContractOps) > 0 {
		if d.ContractOps, err = ddl.MarshalOps(p.ContractOps); err != nil {
			return nil, err
		}
	}
	for _, j := range p.Backfills {
		d.Backfills = append(d.Backfills, jobDoc{Name: j.Name, Table: j.Table, Key: j.Key, Set: j.Set, Into: j.Into,
			Columns: j.Columns, Version: j.Version, GoMode: j.Func != nil, Check: j.Check, Fills: j.Fills, Down: j.Down, Derived: j.Derived})
	}
	return json.Marshal(d)
}

func planFromDocument(b []byte) (Plan, error) {
	var d planDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return Plan{}, fmt.Errorf("decode plan: %w", err)
	}
	p := Plan{Migration: d.Migration, Expand: d.Expand, Columns: d.Columns, Contract: d.Contract, Thresholds: d.Thresholds, Guardrails: d.Guardrails, HotQueries: d.HotQueries, Requires: d.Requires, Owner: d.Owner, Policies: d.Policies, Aggregates: d.Aggregates, Checks: d.Checks, Sunset: d.Sunset, RunWindows: d.RunWindows}
	var err error
	if len(d.ExpandOps) > 0 {
		if p.ExpandOps, err = ddl.UnmarshalOps(d.ExpandOps); err != nil {
			return Plan{}, err
		}
	}
	if len(d.ContractOps) > 0 {
		if p.ContractOps, err = ddl.UnmarshalOps(d.ContractOps); err != nil {
			return Plan{}, err
		}
	}
	for _, j := range d.Backfills {
		job := backfill.Job{Name: j.Name, Table: j.Table, Key: j.Key, Set: j.Set, Into: j.Into, Columns: j.Columns, Version: j.Version, Check: j.Check,
			Fills: j.Fills, Down: j.Down, Derived: j.Derived}
		if j.GoMode {
			job.Func = goModeElsewhere(j.Name)
		}
		p.Backfills = append(p.Backfills, job)
	}
	return p, nil
}

// goModeElsewhere stands in for the Func of a Go-mode job read from the
// ledger: only the service that declared it can run it.
func goModeElsewhere(name string) backfill.ChunkFunc {
	return func(context.Context, *sqlx.Tx, []map[string]any) (int64, error) {
		return 0, fmt.Errorf("backfill %q is a Go-mode job: run it from the service that declares it", name)
	}
}

// Open returns a coordinator of every plan registered in the ledger, read
// back from it: for processes that do not have the plans' code, such as
// the CLI. It registers nothing, and creates or upgrades the ledger
// ([ledger.Ensure]) when it is missing or older than this build: for a
// process that goes on to change state. A reader opens with
// [OpenReadOnly].
func Open(ctx context.Context, db Pool, opts ...CoordinatorOption) (*Coordinator, error) {
	return open(ctx, db, opts, ledger.Ensure)
}

// OpenReadOnly is [Open] for a process that only reads (a status, an
// audit trail, a report), run by a role that may only SELECT the ledger:
// it writes nothing, takes no lock and creates nothing. A database
// without a ledger fails with [ledger.ErrNotInitialised], a ledger at
// another version than this build's with a [*ledger.VersionError]
// (matching [ledger.ErrVersionMismatch]); [Open], or [ledger.Ensure], by
// a role that may, creates or upgrades it. The coordinator's reads work;
// what it would write needs the rights the role lacks, and it records
// nothing of its own accord (a sunset seen overdue, [Coordinator.Deadline]).
func OpenReadOnly(ctx context.Context, db Pool, opts ...CoordinatorOption) (*Coordinator, error) {
	c, err := open(ctx, db, opts, ledger.Check)
	if c != nil {
		c.readOnly = true // it records nothing of its own accord ([Coordinator.Deadline])
	}
	return c, err
}

func open(ctx context.Context, db Pool, opts []CoordinatorOption, prepare func(context.Context, ledger.DB) error) (*Coordinator, error) {
	c, err := newCoordinator(db, opts)
	if err != nil {
		return nil, fmt.Errorf("open coordinator: %w", err)
	}
	if err := prepare(ctx, c.db); err != nil {
		return nil, fmt.Errorf("open coordinator: %w", err)
	}
	defs, err := ledger.Definitions(ctx, c.db)
	if err != nil {
		return nil, fmt.Errorf("open coordinator: %w", err)
	}
	for _, r := range defs {
		if r.Document == nil {
			continue // registered by a build older than stored plans
		}
		p, err := planFromDocument(r.Document)
		if err != nil {
			return nil, fmt.Errorf("open coordinator: plan %q: %w", r.Migration, err)
		}
		c.plans[r.Migration] = p
	}
	return c, nil
}
