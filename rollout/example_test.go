package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

// exampleDB opens a throwaway SQLite database holding users(id, email)
// with three rows, so that the examples run with no server; on
// PostgreSQL (a pool of pgx's "pgx" driver) they read the same.
func exampleDB(ctx context.Context) (db *sqlx.DB, done func()) {
	dir, err := os.MkdirTemp("", "schemashift-rollout-example-")
	if err != nil {
		panic(err)
	}
	db, err = sqlite.Open(ctx, filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	db.MustExecContext(ctx, `CREATE TABLE users (id bigint NOT NULL PRIMARY KEY, email text NOT NULL)`)
	db.MustExecContext(ctx, `INSERT INTO users (id, email) VALUES (1, 'Ada@Example.COM'), (2, 'Grace@Example.COM'), (3, 'Edsger@Example.COM')`)
	return db, func() { db.Close(); os.RemoveAll(dir) }
}

// emailPlan adds users.email_lower, fills it from email, and drops
// nothing: the plan every service of the examples registers.
var emailPlan = rollout.Plan{
	Migration: "users_email_lower",
	ExpandOps: []ddl.Op{ddl.AddColumn{Table: "users", Column: "email_lower", Type: "text"}},
	Columns:   []rollout.Column{{Table: "users", Column: "email_lower"}},
	Backfills: []backfill.Job{{Name: "users_email_lower", Table: "users",
		Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}, Derived: true}},
	Thresholds: rollout.Thresholds{Window: time.Minute, MinComparisons: 10},
}

// exampleClock is a clock that stands still until it is moved: the
// examples' times, and so what they print, are the same on every run.
type exampleClock struct{ ns atomic.Int64 }

func newExampleClock() *exampleClock {
	c := &exampleClock{}
	c.ns.Store(time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *exampleClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *exampleClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// A service calls Start at boot: it creates the ledger if need be,
// registers the plans its build knows, checks that the database fits the
// build, sends a first heartbeat and serves the stage of each migration
// from the ledger. Close it on shutdown.
func ExampleStart() {
	ctx := context.Background()
	db, done := exampleDB(ctx)
	defer done()
	clock := newExampleClock()

	// What this build needs whatever the stage: the table and its key.
	needs := contract.Schema{Tables: []contract.Table{{Name: "users",
		Columns: []contract.Column{{Name: "id", Type: "bigint", Nullable: contract.NotNull}}}}}
	svc, err := rollout.Start(ctx, db, rollout.ServiceConfig{Service: "users-api", Build: "v2", InstanceID: "api-1",
		Plans: []rollout.Plan{emailPlan}, Schema: &needs, Clock: clock.Now})
	if err != nil {
		panic(err)
	}
	defer svc.Close() // a last heartbeat; the stage source stops

	flag, err := svc.Flag("users_email_lower")
	if err != nil {
		panic(err)
	}
	fmt.Println("stage:", flag.Stage(ctx))
	st, err := ledger.Get(ctx, db, "users_email_lower")
	if err != nil {
		panic(err)
	}
	fmt.Println("registered at:", st.Phase, st.PhaseSince.Format(time.RFC3339))
	f, err := fleet.Read(ctx, db, "users_email_lower", time.Minute, clock.Now())
	if err != nil {
		panic(err)
	}
	for _, in := range f.Instances {
		fmt.Println("heartbeat:", in.ID, in.Service, in.Build)
	}

	// A build that needs what the database lacks does not start.
	needs.Tables[0].Columns = append(needs.Tables[0].Columns, contract.Column{Name: "email_lower", Type: "text"})
	_, err = rollout.Start(ctx, db, rollout.ServiceConfig{Service: "users-api", Build: "v3",
		Plans: []rollout.Plan{emailPlan}, Schema: &needs, Clock: clock.Now})
	fmt.Println("v3 refused:", errors.Is(err, rollout.ErrSchemaMismatch))
	fmt.Println(err)
	// Output:
	// stage: off
	// registered at: planned 2030-01-01T09:00:00Z
	// heartbeat: api-1 users-api v2
	// v3 refused: true
	// start: schema does not fit this build: column users.email_lower is missing
}

// A coordinator registers the plans it is given and moves a migration
// through its phases, each through its gate; what a gate still needs is
// the refusal's reason. Here the fleet is one instance whose heartbeats
// the example sends itself, and the clock is moved past the plan's
// window instead of waiting for it.
func ExampleNewCoordinator() {
	ctx := context.Background()
	db, done := exampleDB(ctx)
	defer done()
	clock := newExampleClock()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{emailPlan}, rollout.WithClock(clock.Now))
	if err != nil {
		panic(err)
	}
	const m = "users_email_lower"
	advance := func() {
		st, err := c.Advance(ctx, rollout.Request{Migration: m, Actor: "ada", Reason: "example"})
		var refused *rollout.RefusedError
		switch {
		case errors.As(err, &refused): // recorded in the audit trail, as every transition is
			fmt.Printf("refused to %s by gate %q: %s\n", refused.To, refused.Gate, refused.Reason)
		case err != nil:
			panic(err)
		default:
			fmt.Printf("%s (stage %s)\n", st.Phase, st.Stage)
		}
	}

	advance() // the expand: users.email_lower is added
	advance() // its columns exist: services write both shapes
	advance() // no instance has shown it writes both shapes yet

	api1, err := fleet.NewInstance(db, "users-api", "v2", []string{m}, fleet.WithID("api-1"), fleet.WithClock(clock.Now))
	if err != nil {
		panic(err)
	}
	defer api1.Close()
	beat := func() {
		api1.Record(m, flags.DualWrite, true) // what the dualwrite adapters record on each call
		if err := api1.Beat(ctx); err != nil {
			panic(err)
		}
	}
	beat()
	clock.Add(emailPlan.Window + time.Second)
	beat()
	advance() // the whole fleet wrote both shapes for a window

	if err := c.RunBackfills(ctx, m); err != nil {
		panic(err)
	}
	advance()
	reports, err := c.VerifyBackfills(ctx, m, backfill.VerifyOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("verified:", reports[0].Passed(), reports[0].Compared, "rows compared")
	advance()
	next, err := c.Check(ctx, m) // the next gate, judged without moving
	if err != nil {
		panic(err)
	}
	fmt.Printf("next: %s, gate %q met: %v (%s)\n", next.Next, next.Gate, next.Met, next.Reason)

	st, err := c.Rollback(ctx, rollout.Request{Migration: m, Actor: "ada", Reason: "example", ToOff: true})
	if err != nil {
		panic(err)
	}
	fmt.Printf("rolled back to %s (stage %s)\n", st.Phase, st.Stage)

	trail, err := ledger.Audit(ctx, db, m, 0)
	if err != nil {
		panic(err)
	}
	for _, e := range trail {
		fmt.Printf("audit: %s %s→%s accepted=%v by %s at %s\n", e.Kind, e.FromPhase, e.ToPhase, e.Accepted, e.Actor, e.At.Format(time.TimeOnly))
	}
	// Output:
	// expanded (stage off)
	// dualwrite (stage dualwrite)
	// refused to backfill by gate "fleet at dualwrite": no live instance reports heartbeats for this migration: the fleet cannot be seen
	// backfill (stage dualwrite)
	// verify (stage dualwrite)
	// verified: true 3 rows compared
	// shadow (stage shadow)
	// next: live, gate "shadow consistency" met: false (0 comparisons since shadow began, 10 required)
	// rolled back to expanded (stage off)
	// audit: register →planned accepted=true by schemashift at 09:00:00
	// audit: advance planned→expanded accepted=true by ada at 09:00:00
	// audit: advance expanded→dualwrite accepted=true by ada at 09:00:00
	// audit: advance dualwrite→backfill accepted=false by ada at 09:00:00
	// audit: advance dualwrite→backfill accepted=true by ada at 09:01:01
	// audit: advance backfill→verify accepted=true by ada at 09:01:01
	// audit: advance verify→shadow accepted=true by ada at 09:01:01
	// audit: rollback shadow→expanded accepted=true by ada at 09:01:01
}
