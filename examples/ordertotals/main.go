// Command ordertotals moves orders.amount_cents into a new table,
// order_totals(order_id, amount, currency): a cross-table move whose
// backfill is Go code (the currency comes from a Go function), verified in
// the database through the job's SQL description, under live traffic from
// one service instance.
//
// Like the quickstart it needs no setup: it uses the PostgreSQL server
// named by DATABASE_URL (in a database of its own, dropped at the end),
// else a throwaway cluster started from the local server binaries, else —
// when there are none — an embedded SQLite database in a temporary
// directory. -db picks one.
//
//	go run ./examples/ordertotals
//	go run ./examples/ordertotals -db sqlite
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/examples/internal/exampledb"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

const (
	migration = "orders_move_amount"
	orders    = 20_000
)

func main() {
	which := exampledb.Flag(flag.CommandLine)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *which); err != nil {
		fmt.Fprintln(os.Stderr, "ordertotals:", err)
		os.Exit(1)
	}
}

// Order is what the service works with.
type Order struct {
	ID          int64
	AmountCents int64
	Currency    string
}

// currency is business logic that lives in Go, not in SQL: why this
// backfill is a Go-mode job.
func currency(id int64) string {
	if id%4 == 0 {
		return "USD"
	}
	return "EUR"
}

// plan is the rollout, as the orders service declares it. On SQLite,
// which cannot drop a NOT NULL in place, orders.amount_cents is nullable
// from the start (see createOrders) and the expand has no step for it.
func plan(onSQLite bool) rollout.Plan {
	p := rollout.Plan{
		Migration: migration,
		ExpandOps: []ddl.Op{ddl.AddTable{Table: "order_totals",
			Columns: "order_id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, currency text NOT NULL"}},
		Expand: []rollout.Step{{SQL: `ALTER TABLE orders ALTER COLUMN amount_cents DROP NOT NULL`,
			Down: "-- schemashift:ignore set-not-null\nALTER TABLE orders ALTER COLUMN amount_cents SET NOT NULL"}},
		Backfills: []backfill.Job{{
			Name: migration, Table: "orders", Columns: []string{"amount_cents"}, Version: "v2",
			// The rows passed are those without a total: the backfill never
			// sees an order whose total the service wrote.
			Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
				insert, err := tx.PreparexContext(ctx, fillTotal) // parsed once per chunk
				if err != nil {
					return 0, err
				}
				defer insert.Close()
				var moved int64
				for _, r := range rows {
					id := r["id"].(int64)
					res, err := insert.ExecContext(ctx, id, r["amount_cents"], currency(id))
					if err != nil {
						return 0, err
					}
					n, err := res.RowsAffected()
					if err != nil {
						return 0, err
					}
					moved += n
				}
				return moved, nil
			},
			// The service writes exactly what Func computes, so a total that
			// differs was changed behind its back.
			Derived: true,
			// What Func computes, in SQL, for verification inside the
			// database and the repair of drifted totals; its table is where
			// Func writes.
			Check: &backfill.Into{Table: "order_totals", Key: []string{"order_id"}, Columns: []backfill.Assign{
				{Column: "order_id", Expr: "id"}, {Column: "amount", Expr: "amount_cents / 100.0"},
				{Column: "currency", Expr: "CASE WHEN id % 4 = 0 THEN 'USD' ELSE 'EUR' END"}}},
		}},
		ContractOps: []ddl.Op{ddl.DropColumn{Table: "orders", Column: "amount_cents"}},
		Thresholds:  rollout.Thresholds{ShadowConsistency: 0.99, MinComparisons: 200, Window: time.Second},
	}
	if onSQLite {
		p.Expand = nil
	}
	return p
}

// createOrders creates the table as the old code knows it, with n orders.
// On SQLite amount_cents starts nullable: new code does not write it, and
// SQLite cannot drop the NOT NULL later.
func createOrders(ctx context.Context, db *sqlx.DB, n int, onSQLite bool) error {
	create := `CREATE TABLE orders (id bigint PRIMARY KEY, amount_cents bigint NOT NULL)`
	if onSQLite {
		create = `CREATE TABLE orders (id bigint PRIMARY KEY, amount_cents bigint)`
	}
	if _, err := db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create orders: %w", err)
	}
	if _, err := db.ExecContext(ctx, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1)
		INSERT INTO orders (id, amount_cents) SELECT i, (i * 37) % 100000 FROM s`, n); err != nil {
		return fmt.Errorf("seed orders: %w", err)
	}
	return nil
}

// upsertTotal writes an order's total in full, from its id, its amount in
// cents and its currency. cents / 100.0 is numeric on PostgreSQL and a
// float on SQLite (see noteAmount): either way the value the Check's
// amount_cents / 100.0 computes.
const upsertTotal = `INSERT INTO order_totals VALUES ($1, $2 / 100.0, $3)
	ON CONFLICT (order_id) DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency`

// fillTotal is the backfill's write: the same total, for an order that has
// none. An order whose total the service wrote while the chunk ran (at
// stage complete only the new path writes, without the old row's lock) is
// left as written.
const fillTotal = `INSERT INTO order_totals VALUES ($1, $2 / 100.0, $3) ON CONFLICT (order_id) DO NOTHING`

// The two code paths.
func readOld(db *sqlx.DB) dualwrite.ReadFunc[int64, Order] {
	return func(ctx context.Context, id int64) (Order, error) {
		var cents int64
		err := db.GetContext(ctx, &cents, `SELECT amount_cents FROM orders WHERE id = $1`, id)
		return Order{ID: id, AmountCents: cents, Currency: currency(id)}, err
	}
}

func readNew(db *sqlx.DB) dualwrite.ReadFunc[int64, Order] {
	return func(ctx context.Context, id int64) (Order, error) {
		o := Order{ID: id}
		// round: on SQLite the amount is a float, and 12.34 * 100 is 1233.99….
		err := db.QueryRowxContext(ctx, `SELECT CAST(round(amount * 100) AS bigint), currency FROM order_totals WHERE order_id = $1`, id).
			Scan(&o.AmountCents, &o.Currency)
		return o, err
	}
}

func writeOld(ctx context.Context, q sqlx.ExtContext, o Order) error {
	_, err := q.ExecContext(ctx, `INSERT INTO orders (id, amount_cents) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET amount_cents = EXCLUDED.amount_cents`, o.ID, o.AmountCents)
	return err
}

// writeNew upserts the full new representation (and the order itself,
// which new code still owns).
func writeNew(ctx context.Context, q sqlx.ExtContext, o Order) error {
	if _, err := q.ExecContext(ctx, `INSERT INTO orders (id) VALUES ($1) ON CONFLICT DO NOTHING`, o.ID); err != nil {
		return err
	}
	_, err := q.ExecContext(ctx, upsertTotal, o.ID, o.AmountCents, o.Currency)
	return err
}

// run runs the example on the database which names (auto, postgres or
// sqlite).
func run(ctx context.Context, out io.Writer, which string) error {
	db, release, err := exampledb.Open(ctx, out, which, "ordertotals")
	if err != nil {
		return err
	}
	defer release()
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(20)
	onSQLite := db.DriverName() == sqlite.DriverName
	if err := createOrders(ctx, db, orders, onSQLite); err != nil {
		return err
	}

	coord, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan(onSQLite)}, rollout.WithAgeOut(3*time.Second))
	if err != nil {
		return err
	}
	svc, err := rollout.Start(ctx, db, rollout.ServiceConfig{Service: "orders-api", Build: "v7", InstanceID: "orders-api-1",
		Plans: []rollout.Plan{plan(onSQLite)}, Heartbeat: 200 * time.Millisecond, Poll: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer svc.Close()
	flag, err := svc.Flag(migration)
	if err != nil {
		return err
	}
	reads, err := dualwrite.NewReader(flag, readOld(db), readNew(db), dualwrite.WithObserver(svc.Observer()))
	if err != nil {
		return err
	}
	defer reads.Close()
	writes, err := dualwrite.NewTxWriter(db, flag, writeOld, writeNew, dualwrite.WithObserver(svc.Observer()))
	if err != nil {
		return err
	}

	// Traffic: read an order, write a changed amount, add new orders. It
	// stops between requests, so none is cut short: an order counted as
	// created was either written or failed.
	quit := make(chan struct{})
	var wg sync.WaitGroup
	stopTraffic := sync.OnceFunc(func() { close(quit); wg.Wait() })
	defer stopTraffic()
	var created, failed atomic.Int64
	// A write SQLite turned away because a backfill chunk held its write
	// lock past busy_timeout committed nothing: it is tried again, up to
	// three times, then fails visibly.
	write := func(ctx context.Context, o Order) error {
		var err error
		for range 3 {
			if err = writes.Write(ctx, o); !sqlite.Busy(err) {
				return err
			}
		}
		return err
	}
	var firstErr atomic.Value
	wg.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			id := 1 + (i*7919)%orders
			var err error
			switch i % 3 {
			case 0:
				_, err = reads.Read(ctx, id)
			case 1:
				err = write(ctx, Order{ID: id, AmountCents: i % 5000, Currency: currency(id)})
			case 2:
				n := orders + created.Add(1)
				err = write(ctx, Order{ID: n, AmountCents: n % 900, Currency: currency(n)})
			}
			if err != nil && ctx.Err() == nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			time.Sleep(time.Millisecond)
		}
	})

	for {
		st, err := ledger.Get(ctx, db, migration)
		if err != nil {
			return err
		}
		if st.Phase == ledger.Contracted {
			break
		}
		switch st.Phase {
		case ledger.Backfill:
			if err = coord.RunBackfills(ctx, migration, backfill.WithChunkSize(1000, 200, 5000)); err == nil {
				var p backfill.Progress
				if p, err = backfill.State(ctx, db, migration); err == nil {
					fmt.Fprintf(out, "  backfill: %d orders walked, %d moved to order_totals in %d chunks (the others' totals were written by the service)\n", p.RowsDone, p.RowsChanged, p.ChunksDone)
				}
			}
		case ledger.Verify:
			var reps []backfill.Report
			if reps, err = coord.VerifyBackfills(ctx, migration, backfill.VerifyOptions{}); err == nil {
				fmt.Fprintf(out, "  verify: %d orders compared with order_totals %s, %d divergent\n", reps[0].Compared, compared(onSQLite), reps[0].Divergent)
			}
		}
		if err == nil {
			var next ledger.Status
			var ready rollout.Readiness
			next, ready, err = coord.AdvanceWhenMet(ctx, rollout.Request{Migration: migration, Actor: "ordertotals", Reason: "gate met",
				Confirm: st.Phase == ledger.Complete}, 100*time.Millisecond, time.Minute)
			if err == nil {
				fmt.Fprintf(out, "%-10s → %-10s (%s)\n", st.Phase, next.Phase, ready.Gate)
			}
		}
		if err != nil {
			return err
		}
	}
	stopTraffic()

	var rows, totals int64
	if err := db.GetContext(ctx, &rows, `SELECT count(*) FROM orders`); err != nil {
		return err
	}
	if err := db.GetContext(ctx, &totals, `SELECT count(*) FROM orders o JOIN order_totals t ON t.order_id = o.id`); err != nil {
		return err
	}
	want := orders + created.Load()
	// What the database could not do safely: on SQLite the tables' notes,
	// then the DDL's.
	if onSQLite {
		fmt.Fprintln(out, "note:", noteNullable)
		fmt.Fprintln(out, "note:", noteAmount)
	}
	if err := exampledb.PrintNotes(ctx, out, db, migration); err != nil {
		return err
	}
	fmt.Fprintf(out, "orders: %d expected, %d present, %d with their total; %d failed requests\n", want, rows, totals, failed.Load())
	if rows != want || totals != want || failed.Load() != 0 {
		err, _ := firstErr.Load().(error)
		return errors.Join(fmt.Errorf("orders lost or requests failed"), err)
	}
	fmt.Fprintln(out, "0 orders lost; amount_cents dropped.")
	return nil
}

// What the tables give up on SQLite, beside the DDL's notes in the audit
// trail.
const (
	noteNullable = "sqlite: orders.amount_cents was nullable from the start (SQLite cannot drop a NOT NULL in place), " +
		"so nothing stopped old code from writing an order without its amount"
	noteAmount = "sqlite: order_totals.amount holds a float, not numeric(12,2) (SQLite has no exact decimals): " +
		"nothing checks its precision, and readers round amount * 100 back to cents"
)

// compared says how verification compares the tables: by chunk checksums
// on PostgreSQL; SQLite has no hash function, so there row by row.
func compared(onSQLite bool) string {
	if onSQLite {
		return "row by row"
	}
	return "by checksum"
}
