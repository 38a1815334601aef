package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
)

// Ensure creates the ledger tables, or upgrades them to this build's
// version. It is safe to call from every instance at once. Given a pool
// it runs in a transaction of its own; given a transaction, in that one,
// where the tables are made or upgraded when it commits and not at all
// when it rolls back, and an Ensure that fails undoes its own part and
// nothing of the caller's. A ledger already at this build's version is
// only read; an upgrade in a caller's transaction holds its lock until
// that transaction ends (every other Ensure, every instance's Start,
// waits for it), and on PostgreSQL needs READ COMMITTED, the default: a
// REPEATABLE READ snapshot taken before the lock cannot see the upgrade
// another made meanwhile, and replays it into an error.
func Ensure(ctx context.Context, db DB) error {
	h, d, err := handle(ctx, db)
	if err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	pool, ok := h.(beginner)
	if !ok {
		// The caller's transaction: all of Ensure or none of it, whatever
		// the caller then does with the rest (a failed statement on SQLite
		// leaves the transaction going, with half an upgrade in it).
		if _, err := h.ExecContext(ctx, d.EnsureSavepoint()); err != nil {
			return fmt.Errorf("ensure ledger: %w", err)
		}
		if err := ensureIn(ctx, d, h); err != nil {
			if _, rerr := h.ExecContext(context.WithoutCancel(ctx), d.EnsureRollback()); rerr != nil {
				return errors.Join(err, fmt.Errorf("ensure ledger: undo: %w", rerr))
			}
			if _, rerr := h.ExecContext(context.WithoutCancel(ctx), d.EnsureRelease()); rerr != nil {
				return errors.Join(err, fmt.Errorf("ensure ledger: undo: %w", rerr))
			}
			return err
		}
		if _, err := h.ExecContext(ctx, d.EnsureRelease()); err != nil {
			return fmt.Errorf("ensure ledger: %w", err)
		}
		return nil
	}
	if p, ok := pool.(*sqlx.DB); ok {
		if err := d.CheckPool(ctx, p); err != nil {
			return fmt.Errorf("ensure ledger: %w", err)
		}
	}
	tx, err := pool.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := ensureIn(ctx, d, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	return nil
}

// beginner begins transactions: a pool or a connection.
type beginner interface {
	BeginTxx(ctx context.Context, opts *sql.TxOptions) (*sqlx.Tx, error)
}

// ensureIn creates or upgrades the tables in tx, under the ledger
// schema's lock.
func ensureIn(ctx context.Context, d dialect.Dialect, tx dialect.Conn) error {
	schema := d.LedgerSchema()
	// At this build's version already (versions only rise): nothing to
	// lock or write, so that a caller's transaction holds nothing of the
	// ledger while it goes on (every instance's Start would wait for it).
	if ok, err := d.TableExists(ctx, tx, ident.Table{Name: "schemashift_ledger_schema"}); err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	} else if ok {
		var version int
		if err := sqlx.GetContext(ctx, tx, &version, d.LedgerVersion()); err != nil {
			return fmt.Errorf("ensure ledger: %w", err)
		}
		if version == len(schema) {
			missing, err := missingAdditions(ctx, d, tx)
			if err != nil {
				return fmt.Errorf("ensure ledger: %w", err)
			}
			if len(missing) == 0 {
				return nil
			}
		}
	}
	if err := d.LockTx(ctx, tx, 7215837262348120002); err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	if _, err := tx.ExecContext(ctx, d.CreateLedgerVersion()); err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	var version int
	if err := sqlx.GetContext(ctx, tx, &version, d.LedgerVersion()); err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	if version > len(schema) {
		return fmt.Errorf("ensure ledger: %w: upgrade schemashift", &VersionError{Have: version, Want: len(schema)})
	}
	for v := version; v < len(schema); v++ {
		if _, err := tx.ExecContext(ctx, schema[v]); err != nil {
			return fmt.Errorf("ensure ledger: upgrade to version %d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, d.ClearLedgerVersion()); err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	if _, err := tx.ExecContext(ctx, d.InsertLedgerVersion(), len(schema)); err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	missing, err := missingAdditions(ctx, d, tx)
	if err != nil {
		return fmt.Errorf("ensure ledger: %w", err)
	}
	for _, a := range missing {
		if _, err := tx.ExecContext(ctx, a.DDL); err != nil {
			return fmt.Errorf("ensure ledger: add %s: %w", a.Table, err)
		}
	}
	return nil
}

// missingAdditions lists the ledger's additions (tables outside its
// versions, which builds of this version but older than them do without)
// that q lacks.
func missingAdditions(ctx context.Context, d dialect.Dialect, q dialect.Conn) ([]dialect.LedgerAddition, error) {
	var missing []dialect.LedgerAddition
	for _, a := range d.LedgerAdditions() {
		ok, err := d.TableExists(ctx, q, ident.Table{Name: a.Table})
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, a)
		}
	}
	return missing, nil
}

// ErrUnknownMigration: no migration of that name is in the ledger.
var ErrUnknownMigration = errors.New("unknown migration")

// ErrInvalidArgument is wrapped by the error of a call given a value it
// cannot work with (a nil pool).
var ErrInvalidArgument = errors.New("invalid argument")

// Status is a migration's row in the ledger. It is a value, safe to share
// once read.
type Status struct {
	Migration  string      `json:"migration"`
	Phase      Phase       `json:"phase"`
	Stage      flags.Stage `json:"stage"`
	Version    int64       `json:"version"`
	PhaseSince time.Time   `json:"phase_since"`
	UpdatedAt  time.Time   `json:"updated_at"`
	// Tripped holds why a guardrail stepped the migration back; advancing
	// again needs rollout.Request.Acknowledge.
	Tripped string `json:"tripped,omitempty"`
}

// Row is a migration's whole row: its [Status] and the baseline its
// gates and guardrails count from, what the fleet had reported when the
// phase began. It is a value, safe to share once read.
type Row struct {
	Status
	Base        fleet.Totals
	BaseLatency fleet.Latency
}

type statusRow struct {
	Migration  string    `db:"migration"`
	Phase      string    `db:"phase"`
	Stage      string    `db:"stage"`
	Version    int64     `db:"version"`
	PhaseSince time.Time `db:"phase_since"`
	UpdatedAt  time.Time `db:"updated_at"`
	Matched    int64     `db:"matched_base"`
	Mismatched int64     `db:"mismatched_base"`
	OldTotal   int64     `db:"base_old_total"`
	OldErrors  int64     `db:"base_old_errors"`
	NewTotal   int64     `db:"base_new_total"`
	NewErrors  int64     `db:"base_new_errors"`
	Tripped    string    `db:"tripped"`
	Latency    string    `db:"base_latency"`
}

func (r statusRow) row() (Row, error) {
	p, err := ParsePhase(r.Phase)
	if err != nil {
		return Row{}, err
	}
	s, err := flags.ParseStage(r.Stage)
	if err != nil {
		return Row{}, err
	}
	out := Row{Status: Status{Migration: r.Migration, Phase: p, Stage: s, Version: r.Version, PhaseSince: r.PhaseSince, UpdatedAt: r.UpdatedAt, Tripped: r.Tripped},
		Base: fleet.Totals{Matched: r.Matched, Mismatched: r.Mismatched, OldTotal: r.OldTotal, OldErrors: r.OldErrors, NewTotal: r.NewTotal, NewErrors: r.NewErrors}}
	// A baseline that does not decode counts from zero, as the latency
	// guardrail always read it.
	_ = json.Unmarshal([]byte(r.Latency), &out.BaseLatency)
	return out, nil
}

// Read reads one migration's row: the one read of it that every part of
// the library makes ([ErrUnknownMigration] when there is none).
func Read(ctx context.Context, db DB, migration string) (Row, error) {
	h, d, err := handle(ctx, db)
	if err != nil {
		return Row{}, fmt.Errorf("read migration %q: %w", migration, err)
	}
	return read(ctx, h, migration, d.ReadMigration())
}

// Lock reads one migration's row as [Read] does and locks it for the rest
// of tx, a transaction (on SQLite, tx's write lock holds it); a pool or a
// connection, which would lock nothing, is refused ([ErrInvalidArgument]).
func Lock(ctx context.Context, tx DB, migration string) (Row, error) {
	h, d, err := inTx(ctx, tx)
	if err != nil {
		return Row{}, fmt.Errorf("lock migration %q: %w", migration, err)
	}
	return read(ctx, h, migration, d.LockMigration())
}

// read reads the migration's row with query, a statement of the row's
// columns that takes the migration as its one parameter.
func read(ctx context.Context, q sqlx.QueryerContext, migration, query string) (Row, error) {
	var r statusRow
	err := sqlx.GetContext(ctx, q, &r, query, migration)
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, fmt.Errorf("read migration: %w %q", ErrUnknownMigration, migration)
	}
	if err != nil {
		return Row{}, fmt.Errorf("read migration %q: %w", migration, err)
	}
	return r.row()
}

// Get reads one migration's status.
func Get(ctx context.Context, db DB, migration string) (Status, error) {
	r, err := Read(ctx, db, migration)
	return r.Status, err
}

// List reads every migration's status.
func List(ctx context.Context, db DB) ([]Status, error) {
	h, d, err := handle(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var rows []statusRow
	if err := sqlx.SelectContext(ctx, h, &rows, d.ListMigrations()); err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	out := make([]Status, 0, len(rows))
	for _, r := range rows {
		s, err := r.row()
		if err != nil {
			return nil, err
		}
		out = append(out, s.Status)
	}
	return out, nil
}

// Event is one entry of the audit trail. It is a value.
type Event struct {
	ID        int64     `db:"id" json:"id"`
	Migration string    `db:"migration" json:"migration"`
	Kind      string    `db:"kind" json:"kind"`
	Accepted  bool      `db:"accepted" json:"accepted"`
	Actor     string    `db:"actor" json:"actor"`
	FromPhase string    `db:"from_phase" json:"from_phase"`
	ToPhase   string    `db:"to_phase" json:"to_phase"`
	FromStage string    `db:"from_stage" json:"from_stage"`
	ToStage   string    `db:"to_stage" json:"to_stage"`
	Version   *int64    `db:"version" json:"version,omitempty"`
	Reason    string    `db:"reason" json:"reason"`
	At        time.Time `db:"at" json:"at"`
}

// Audit reads a migration's audit trail, oldest first ("" for all).
func Audit(ctx context.Context, db DB, migration string, limit int) ([]Event, error) {
	h, d, err := handle(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	if limit <= 0 {
		limit = 1000
	}
	var ev []Event
	err = sqlx.SelectContext(ctx, h, &ev, d.Audit(), migration, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	return ev, nil
}
