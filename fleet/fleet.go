package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
)

// ErrInvalidArgument is wrapped by the error of a call given a value it
// cannot work with (a nil pool or option, a non-positive interval).
var ErrInvalidArgument = errors.New("invalid argument")

// InstanceState is what the ledger knows of one instance for one migration.
// It is a value, safe to share once read.
type InstanceState struct {
	ID          string                    `json:"id"`
	Service     string                    `json:"service"`
	Build       string                    `json:"build"`
	FirstSeen   time.Time                 `json:"first_seen"`
	LastSeen    time.Time                 `json:"last_seen"`
	MinStage    string                    `json:"min_stage"`
	MaxStage    string                    `json:"max_stage"`
	StageSeen   map[flags.Stage]time.Time `json:"stage_seen"`
	LastOldCall *time.Time                `json:"last_old_call,omitempty"`
	OldCalls    int64                     `json:"old_calls"`
	Matched     int64                     `json:"matched"`
	Mismatched  int64                     `json:"mismatched"`
	// ShadowDrops counts shadow reads never compared: the reader's bound
	// was full, or it was closed (a call sampled out is none).
	ShadowDrops int64 `json:"shadow_drops"`
}

// Fleet is the live instances of one migration, as the ledger sees them.
// It is a value, safe to share once read.
type Fleet struct {
	// Now is the time it was read at, by the reader's clock: the
	// instances are those seen within the age-out before it.
	Now       time.Time       `json:"now"`
	Instances []InstanceState `json:"instances"`
	// Unaware are live instances of the same services that do not report
	// this migration: old builds.
	Unaware []InstanceState `json:"unaware,omitempty"`
}

// Read reads the instances of migration live at now: seen within
// ageOut before it.
func Read(ctx context.Context, db DB, migration string, ageOut time.Duration, now time.Time) (Fleet, error) {
	f := Fleet{Now: now}
	q, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return f, fmt.Errorf("read fleet: %w", err)
	}
	since := dialect.Stamp(now.Add(-ageOut))
	type instRow struct {
		ID          string     `db:"instance_id"`
		Service     string     `db:"service"`
		Build       string     `db:"build_version"`
		FirstSeen   time.Time  `db:"first_seen"`
		LastSeen    time.Time  `db:"last_seen"`
		StageSeen   string     `db:"stage_seen"`
		MinStage    string     `db:"min_stage"`
		MaxStage    string     `db:"max_stage"`
		LastOldCall *time.Time `db:"last_old_call"`
		OldCalls    int64      `db:"old_calls"`
		Matched     int64      `db:"matched"`
		Mismatched  int64      `db:"mismatched"`
		ShadowDrops int64      `db:"shadow_drops"`
	}
	var rows []instRow
	if err := sqlx.SelectContext(ctx, q, &rows, d.ReadInstances(), migration, since); err != nil {
		return f, fmt.Errorf("read fleet: %w", err)
	}
	for _, r := range rows {
		in := InstanceState{ID: r.ID, Service: r.Service, Build: r.Build, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen,
			MinStage: r.MinStage, MaxStage: r.MaxStage, LastOldCall: r.LastOldCall, OldCalls: r.OldCalls, Matched: r.Matched,
			Mismatched: r.Mismatched, ShadowDrops: r.ShadowDrops, StageSeen: map[flags.Stage]time.Time{}}
		var seen map[string]time.Time
		if err := json.Unmarshal([]byte(r.StageSeen), &seen); err != nil {
			return f, fmt.Errorf("read fleet: stages of %s: %w", r.ID, err)
		}
		for name, at := range seen {
			s, err := flags.ParseStage(name)
			if err != nil {
				return f, fmt.Errorf("read fleet: %w", err)
			}
			in.StageSeen[s] = at
		}
		f.Instances = append(f.Instances, in)
	}
	var unaware []instRow
	if err := sqlx.SelectContext(ctx, q, &unaware, d.ReadUnaware(), migration, since); err != nil {
		return f, fmt.Errorf("read fleet: %w", err)
	}
	for _, r := range unaware {
		f.Unaware = append(f.Unaware, InstanceState{ID: r.ID, Service: r.Service, Build: r.Build, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen})
	}
	return f, nil
}

// InstancesPerService counts, per service, the instances live at now
// (seen within ageOut before it) that report any migration, each once
// whatever the number of migrations it reports.
func InstancesPerService(ctx context.Context, db DB, ageOut time.Duration, now time.Time) (map[string]int, error) {
	q, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	var counts []struct {
		Service string `db:"service"`
		N       int    `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, q, &counts, d.InstancesPerService(), dialect.Stamp(now.Add(-ageOut))); err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	out := make(map[string]int, len(counts))
	for _, c := range counts {
		out[c.Service] = c.N
	}
	return out, nil
}

// Totals sums what every instance reported for a migration: shadow
// comparisons, and calls and errors per path. It is a value; the ledger
// keeps the totals of when a phase began as its baseline.
type Totals struct {
	Matched    int64 `db:"matched"`
	Mismatched int64 `db:"mismatched"`
	OldTotal   int64 `db:"old_total"`
	OldErrors  int64 `db:"old_errors"`
	NewTotal   int64 `db:"new_total"`
	NewErrors  int64 `db:"new_errors"`
}

// Sum reads the [Totals] of a migration.
func Sum(ctx context.Context, db DB, migration string) (Totals, error) {
	var t Totals
	q, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return t, fmt.Errorf("sum heartbeats: %w", err)
	}
	err = sqlx.GetContext(ctx, q, &t, d.SumHeartbeats(), migration)
	if err != nil {
		err = fmt.Errorf("sum heartbeats: %w", err)
	}
	return t, err
}

// Since counts the comparisons made since base was taken (the phase's
// start, in the ledger).
func (t Totals) Since(base Totals) Consistency {
	out := Consistency{Matched: t.Matched - base.Matched, Mismatched: t.Mismatched - base.Mismatched}
	if n := out.Matched + out.Mismatched; n > 0 {
		out.Ratio = float64(out.Matched) / float64(n)
	}
	return out
}

// Consistency counts shadow comparisons (since the current phase began,
// for a gate or the board). Mismatched counts every comparison that did
// not match: a mismatch, or a failure (a read's error, a timeout, a
// panic); Ratio is Matched over both. It is a value.
type Consistency struct {
	Matched    int64   `json:"matched"`
	Mismatched int64   `json:"mismatched"`
	Ratio      float64 `json:"ratio"`
}
