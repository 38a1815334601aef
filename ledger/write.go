package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dialect"
)

// Record appends e to the audit trail at e.At (a time of the caller's
// clock: the decision's), with e.Version when set.
func Record(ctx context.Context, db DB, e Event) error {
	h, d, err := handle(ctx, db)
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	return record(ctx, h, d, e)
}

func record(ctx context.Context, q dialect.Execer, d dialect.Dialect, e Event) error {
	_, err := q.ExecContext(ctx, d.RecordEvent(), e.Migration, e.Kind, e.Accepted, e.Actor, e.FromPhase, e.ToPhase, e.FromStage, e.ToStage,
		e.Version, e.Reason, dialect.Stamp(e.At))
	return err
}

// Move is one transition as the ledger records it ([Set]). It is a value.
type Move struct {
	// From is the row the transition decided on, read under the
	// migration's lock: the move is made only if its version is still
	// the row's.
	From Status
	To   Phase
	// Base and BaseLatency are what the fleet has reported so far: the
	// baseline of the phase that begins.
	Base        fleet.Totals
	BaseLatency fleet.Latency
	// Tripped is the guardrail trip the row holds after the move ("" for
	// none).
	Tripped string
	// Kind, Actor and Reason are the event's.
	Kind, Actor, Reason string
	// At is the transition's time: the phase's start, the row's update
	// and the event's.
	At time.Time
}

// Set makes m, in tx, a transaction: a compare-and-set of the
// migration's row on its version (sql.ErrNoRows when it moved since
// m.From was read), and the accepted event that records it, at the
// version it sets. It returns the row as it is now. A pool or a
// connection, in which the move could commit without its event, is
// refused ([ErrInvalidArgument]).
func Set(ctx context.Context, tx DB, m Move) (Row, error) {
	lat, _ := json.Marshal(m.BaseLatency) // arrays of integers: cannot fail
	h, d, err := inTx(ctx, tx)
	if err != nil {
		return Row{}, fmt.Errorf("set migration %q: %w", m.From.Migration, err)
	}
	var next statusRow
	if err := sqlx.GetContext(ctx, h, &next, d.SetMigration(),
		m.From.Migration, m.To.String(), m.To.Stage().String(), m.Base.Matched, m.Base.Mismatched, m.Base.OldTotal, m.Base.OldErrors,
		m.Base.NewTotal, m.Base.NewErrors, m.Tripped, m.From.Version, string(lat), dialect.Stamp(m.At)); err != nil {
		return Row{}, err
	}
	if err := record(ctx, h, d, Event{Migration: m.From.Migration, Kind: m.Kind, Accepted: true, Actor: m.Actor, FromPhase: m.From.Phase.String(),
		ToPhase: m.To.String(), FromStage: m.From.Stage.String(), ToStage: m.To.Stage().String(), Version: &next.Version, Reason: m.Reason,
		At: m.At}); err != nil {
		return Row{}, fmt.Errorf("record event: %w", err)
	}
	return next.row()
}

// Trip records on the migration's row why a guardrail tripped, unless it
// holds a trip already.
func Trip(ctx context.Context, db DB, migration, reason string) error {
	h, d, err := handle(ctx, db)
	if err != nil {
		return fmt.Errorf("trip migration %q: %w", migration, err)
	}
	_, err = h.ExecContext(ctx, d.TripMigration(), migration, reason)
	return err
}

// ContractBegun says whether the contract of the migration at st has
// begun (its intent recorded as an accepted "contracting" event at st's
// version, its operations run or running) without the transition being
// recorded yet, and since when.
func ContractBegun(ctx context.Context, db DB, st Status) (bool, time.Time, error) {
	if st.Phase != Complete {
		return false, time.Time{}, nil
	}
	h, d, err := handle(ctx, db)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("read the contract's intent: %w", err)
	}
	var at []time.Time
	if err := sqlx.SelectContext(ctx, h, &at, d.ContractIntent(),
		st.Migration, st.Version, dialect.Stamp(st.PhaseSince)); err != nil {
		return false, time.Time{}, fmt.Errorf("read the contract's intent: %w", err)
	}
	if len(at) == 0 {
		return false, time.Time{}, nil
	}
	return true, at[0], nil
}
