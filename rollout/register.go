package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/ledger"
)

// ErrPlanConflict: a plan of that name is registered with another
// definition.
var ErrPlanConflict = errors.New("rollout plan conflicts with the registered one")

// Register records plan in the ledger (at phase planned) or checks that
// the registered one has the same definition. The plan is checked in full
// first ([ErrInvalidPlan]): its ddl operations rendered for db's database
// and server version, up and down, its raw steps linted, its jobs,
// thresholds and guardrails checked; an invalid plan stores nothing, so
// that its correction registers under the same name. The migration's
// first phase and its register event are stamped time.Now; a
// [Coordinator] and [Start] register on their clocks.
//
// A row registered by a build that stored no definition (NULL) gets this
// plan's document only when its recorded hash is this plan's current
// hash. A row whose hash is of the legacy form accepts a plan whose
// legacy hash matches, but the legacy hash cannot see
// every field, so such a match stores nothing: the definition stays NULL,
// and a changed plan registering on the legacy hash alone cannot make the
// ledger serve it as the registered one.
func Register(ctx context.Context, db Pool, plan Plan) error {
	x, _, err := sqlxPool(db)
	if err != nil {
		return fmt.Errorf("register plan %q: %w", plan.Migration, err)
	}
	return register(ctx, x, plan, dialect.Tick(time.Now()))
}

// register is Register at now.
func register(ctx context.Context, db *sqlx.DB, plan Plan, now time.Time) error {
	if err := plan.validate(ctx, db); err != nil {
		return err
	}
	if err := checkSequence(ctx, db, []Plan{plan}); err != nil {
		return fmt.Errorf("register plan %q: %w", plan.Migration, err)
	}
	hash, err := plan.DefinitionHash()
	if err != nil {
		return fmt.Errorf("register plan %q: %w", plan.Migration, err)
	}
	doc, err := plan.document()
	if err != nil {
		return fmt.Errorf("register plan %q: %w", plan.Migration, err)
	}
	added, err := ledger.Add(ctx, db, ledger.Definition{Migration: plan.Migration, Hash: hash, Document: doc}, now)
	if err != nil {
		return fmt.Errorf("register plan %q: %w", plan.Migration, err)
	}
	if added {
		return nil
	}
	registered, err := ledger.ReadDefinition(ctx, db, plan.Migration)
	if err != nil {
		return fmt.Errorf("register plan %q: %w", plan.Migration, err)
	}
	if err := plan.sameAs(registered, hash); err != nil {
		return fmt.Errorf("register plan %q: %w", plan.Migration, err)
	}
	if registered.Hash != hash {
		// Matched by the legacy hash alone, which cannot see every field
		// (an index's columns, a column's default): this plan may differ
		// from the one registered, so its document is not stored as that
		// one's. The definition stays NULL until a build whose current
		// hash was recorded registers.
		return nil
	}
	return ledger.StoreDocument(ctx, db, plan.Migration, doc)
}

// sameAs reports (as an [ErrPlanConflict]) whether plan, of definition
// hash, differs from the one the ledger registered: registered's hash
// and, when stored, its document.
//
// A hash of the legacy form, recorded by a build before [hashPrefix], is
// accepted when this plan's legacy hash matches it and the stored
// definition, read back, has this plan's hash: the same plan registers
// after an upgrade, and a change the legacy hash could not see (an
// index's columns, a column's default) is still a conflict. The legacy
// hash stays in the ledger, so that instances of the older build still in
// the fleet keep registering too.
func (p Plan) sameAs(registered ledger.Definition, hash string) error {
	if registered.Hash == hash {
		return nil
	}
	conflict := func(detail string) error {
		return fmt.Errorf("%w: the ledger has definition %s, this build has %s%s; a changed plan needs a new migration name",
			ErrPlanConflict, registered.Hash, hash, detail)
	}
	if strings.HasPrefix(registered.Hash, hashPrefix) || registered.Hash != p.legacyHash() {
		return conflict("")
	}
	if registered.Document == nil {
		return nil // registered by a build older than stored plans: its hash is all there is
	}
	stored, err := planFromDocument(registered.Document)
	if err != nil {
		return fmt.Errorf("read the registered definition: %w", err)
	}
	storedHash, err := stored.DefinitionHash()
	if err != nil {
		return fmt.Errorf("read the registered definition: %w", err)
	}
	if storedHash != hash {
		return conflict(" (the stored definition hashes as " + storedHash + ")")
	}
	return nil
}
