package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

// Definition is a plan as the ledger stores it: its definition hash and
// its document (nil when registered by a build that stored none), for
// processes that do not have the plan's code. The document's form is
// the plan's (rollout); the ledger keeps it as it is. It is a value.
type Definition struct {
	Migration string
	Hash      string
	Document  []byte
}

// Add enters a new migration in the ledger at phase planned (stage off)
// with its definition, and records its register event, at at. It
// reports false, and changes nothing, when a migration of that name is
// there already.
func Add(ctx context.Context, db DB, d Definition, at time.Time) (bool, error) {
	q, dl, err := handle(ctx, db)
	if err != nil {
		return false, fmt.Errorf("add migration %q: %w", d.Migration, err)
	}
	res, err := q.ExecContext(ctx, dl.AddMigration(), d.Migration, d.Hash, string(d.Document), dialect.Stamp(at))
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	version := int64(1)
	return true, record(ctx, q, dl, Event{Migration: d.Migration, Kind: "register", Accepted: true, Actor: "schemashift",
		ToPhase: Planned.String(), ToStage: Planned.Stage().String(), Version: &version, Reason: "plan " + d.Hash, At: at})
}

type definitionRow struct {
	Migration  string  `db:"migration"`
	Hash       string  `db:"definition_hash"`
	Definition *string `db:"definition"`
}

func (r definitionRow) definition() Definition {
	d := Definition{Migration: r.Migration, Hash: r.Hash}
	if r.Definition != nil {
		d.Document = []byte(*r.Definition)
	}
	return d
}

// ReadDefinition reads the definition a migration is registered with.
func ReadDefinition(ctx context.Context, db DB, migration string) (Definition, error) {
	q, d, err := handle(ctx, db)
	if err != nil {
		return Definition{}, fmt.Errorf("read definition of %q: %w", migration, err)
	}
	var r definitionRow
	if err := sqlx.GetContext(ctx, q, &r, d.ReadDefinition(), migration); err != nil {
		return Definition{}, err
	}
	return r.definition(), nil
}

// Definitions reads every migration's definition, by name.
func Definitions(ctx context.Context, db DB) ([]Definition, error) {
	q, d, err := handle(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read definitions: %w", err)
	}
	var rows []definitionRow
	if err := sqlx.SelectContext(ctx, q, &rows, d.ListDefinitions()); err != nil {
		return nil, fmt.Errorf("read definitions: %w", err)
	}
	out := make([]Definition, len(rows))
	for i, r := range rows {
		out[i] = r.definition()
	}
	return out, nil
}

// StoreDocument stores doc as the migration's document where it has
// none.
func StoreDocument(ctx context.Context, db DB, migration string, doc []byte) error {
	q, d, err := handle(ctx, db)
	if err != nil {
		return fmt.Errorf("store definition of %q: %w", migration, err)
	}
	_, err = q.ExecContext(ctx, d.StoreDocument(), migration, string(doc))
	return err
}

// Stages reads every migration's stage as the ledger spells it, unparsed:
// a stage this build does not know is served as it is, and the flag's
// evaluation falls back.
func Stages(ctx context.Context, db DB) (map[string]string, error) {
	q, d, err := handle(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read stages: %w", err)
	}
	var rows []struct {
		Migration string `db:"migration"`
		Stage     string `db:"stage"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, d.ListStages()); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Migration] = r.Stage
	}
	return out, nil
}
