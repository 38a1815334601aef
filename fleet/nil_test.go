package fleet_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/rollouttest"
)

// A typed-nil transaction, or a *sqlx.Tx of no *sql.Tx, given to any of
// the functions that take a small DB interface is refused with an error,
// never a nil-pointer panic.
func TestNilTransactionsAreRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for name, db := range map[string]fleet.DB{"nil *sql.Tx": (*sql.Tx)(nil), "nil *sqlx.Tx": (*sqlx.Tx)(nil), "empty *sqlx.Tx": &sqlx.Tx{}} {
		for fn, call := range map[string]func() error{
			"fleet.Read":      func() error { _, err := fleet.Read(ctx, db, "m", time.Minute, rollouttest.T0); return err },
			"fleet.Sum":       func() error { _, err := fleet.Sum(ctx, db, "m"); return err },
			"fleet.Latencies": func() error { _, err := fleet.Latencies(ctx, db, "m"); return err },
			"fleet.Samples": func() error {
				_, err := fleet.Samples(ctx, db, "m", rollouttest.T0, rollouttest.T0)
				return err
			},
			"fleet.InstancesPerService": func() error {
				_, err := fleet.InstancesPerService(ctx, db, time.Minute, rollouttest.T0)
				return err
			},
			"backfill.State":        func() error { _, err := backfill.State(ctx, db, "job"); return err },
			"backfill.EnsureSchema": func() error { return backfill.EnsureSchema(ctx, db) },
			"backfill.Pause":        func() error { return backfill.Pause(ctx, db, "job") },
			"contract.Verify":       func() error { return contract.Verify(ctx, db, contract.Schema{}) },
		} {
			assert.NotPanics(t, func() { assert.Error(t, call(), "%s(%s)", fn, name) }, "%s(%s)", fn, name)
		}
	}
}
