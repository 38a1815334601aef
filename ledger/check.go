package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/ident"
)

// ErrNotInitialised is the error of [Check] on a database that holds no
// ledger: [Ensure] (the CLI's `schemashift init`) creates it.
var ErrNotInitialised = errors.New("the ledger is not initialised")

// ErrVersionMismatch is wrapped by a [*VersionError]: the ledger exists
// at a version other than this build's.
var ErrVersionMismatch = errors.New("the ledger's version is not this build's")

// VersionError is the error of [Check] on a ledger at another version
// than this build's [SchemaVersion]. An older ledger is upgraded by
// [Ensure] (the CLI's `schemashift init`); a newer one needs a newer
// build. It matches [ErrVersionMismatch] with errors.Is.
type VersionError struct {
	Have, Want int // the ledger's version; this build's
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("the ledger is at version %d, this build needs %d", e.Have, e.Want)
}

// Is reports whether target is [ErrVersionMismatch].
func (e *VersionError) Is(target error) bool { return target == ErrVersionMismatch }

// Newer reports whether the ledger is newer than this build: [Ensure]
// cannot help, a newer build can.
func (e *VersionError) Newer() bool { return e.Have > e.Want }

// SchemaVersion is the ledger's version this build creates and reads:
// every dialect's ledger schema has as many versions (a test holds them
// to it).
func SchemaVersion() int { return schemaVersion }

// schemaVersion is the number of versions of the ledger's schema.
const schemaVersion = 6

// Check reads the ledger's version and writes nothing, takes no lock and
// creates nothing: for readers that may only SELECT the ledger (a
// read-only role's status, audit or report), which [Ensure] would fail
// for. It returns nil on a ledger at this build's version,
// [ErrNotInitialised] on a database without a ledger, and a
// [*VersionError] on a ledger at another version. It is safe for
// concurrent use as far as db is.
func Check(ctx context.Context, db DB) error {
	h, d, err := handle(ctx, db)
	if err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	ok, err := d.TableExists(ctx, h, ident.Table{Name: "schemashift_ledger_schema"})
	if err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	if !ok {
		return ErrNotInitialised
	}
	var version int
	if err := sqlx.GetContext(ctx, h, &version, d.LedgerVersion()); err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	if version == 0 {
		return ErrNotInitialised // the table of an Ensure that never got further
	}
	if version != schemaVersion {
		return &VersionError{Have: version, Want: schemaVersion}
	}
	return nil
}
