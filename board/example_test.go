package board_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

// The board of a coordinator is an http.Handler: here served by an
// httptest server (a service mounts it under a prefix of its own mux,
// with http.StripPrefix), read-only since no authorizer is given. GET
// /api/status is what the page shows, as JSON; the example prints its
// stable part. Its times are the coordinator's clock (rollout.WithClock),
// here one that stands still, so the output is the same on every run.
func ExampleNew() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "schemashift-board-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "app.db")) // or sqlx.Open("pgx", url) for PostgreSQL
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.MustExecContext(ctx, `CREATE TABLE users (id bigint NOT NULL PRIMARY KEY, email text NOT NULL)`)
	db.MustExecContext(ctx, `INSERT INTO users (id, email) VALUES (1, 'Ada@Example.COM'), (2, 'Grace@Example.COM')`)

	const m = "users_email_lower"
	plan := rollout.Plan{Migration: m,
		ExpandOps: []ddl.Op{ddl.AddColumn{Table: "users", Column: "email_lower", Type: "text"}},
		Columns:   []rollout.Column{{Table: "users", Column: "email_lower"}},
		Backfills: []backfill.Job{{Name: m, Table: "users",
			Set: []backfill.Assign{{Column: "email_lower", Expr: "lower(email)"}}, Derived: true}}}
	at := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return at }
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan}, rollout.WithClock(clock))
	if err != nil {
		panic(err)
	}
	for range 2 { // expand, then dual writes
		if _, err := c.Advance(ctx, rollout.Request{Migration: m, Actor: "ada", Reason: "example"}); err != nil {
			panic(err)
		}
	}
	api1, err := fleet.NewInstance(db, "users-api", "v2", []string{m}, fleet.WithID("api-1"), fleet.WithClock(clock))
	if err != nil {
		panic(err)
	}
	defer api1.Close()
	api1.Record(m, flags.DualWrite, true)
	if err := api1.Beat(ctx); err != nil {
		panic(err)
	}

	b, err := board.New(c)
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(b)
	defer srv.Close()
	// Closed before the server, which waits for every request: an open
	// page's event stream ends only then. A service's http.Server calls it
	// from RegisterOnShutdown.
	defer b.Close()

	res, err := http.Get(srv.URL + "/api/status")
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	fmt.Println(res.Status, res.Header.Get("Content-Type"))
	var status board.Status
	if err := json.NewDecoder(res.Body).Decode(&status); err != nil {
		panic(err)
	}
	fmt.Println("generated at", status.GeneratedAt.Format(time.RFC3339), "read-only:", status.ReadOnly)
	for _, mig := range status.Migrations {
		fmt.Printf("%s: phase %s, stage %s, since %s\n", mig.Migration, mig.Phase, mig.Stage, mig.PhaseSince.Format(time.RFC3339))
		fmt.Printf("  next: %s through %q, met: %v (%s)\n", mig.Next.Next, mig.Next.Gate, mig.Next.Met, mig.Next.Reason)
		for _, bf := range mig.Backfills {
			fmt.Printf("  backfill %s: %s\n", bf.Job, bf.Status)
		}
		for _, in := range mig.Fleet.Instances {
			fmt.Printf("  instance %s (%s %s): stages %s..%s\n", in.ID, in.Service, in.Build, in.MinStage, in.MaxStage)
		}
	}
	for _, e := range status.Audit {
		fmt.Printf("audit: %s %s→%s by %s\n", e.Kind, e.FromPhase, e.ToPhase, e.Actor)
	}
	// Output:
	// 200 OK application/json
	// generated at 2030-01-01T09:00:00Z read-only: true
	// users_email_lower: phase dualwrite, stage dualwrite, since 2030-01-01T09:00:00Z
	//   next: backfill through "fleet at dualwrite", met: false (instance api-1 (users-api v2) has not been seen for a whole window yet)
	//   backfill users_email_lower: not started
	//   instance api-1 (users-api v2): stages dualwrite..dualwrite
	// audit: register →planned by schemashift
	// audit: advance planned→expanded by ada
	// audit: advance expanded→dualwrite by ada
}
