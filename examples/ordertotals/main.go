// Command ordertotals moves orders.amount_cents into a new table,
// order_totals(order_id, amount, currency): a cross-table move whose
// backfill is Go code (the currency comes from a Go function), verified in
// the database through the job's SQL description, under live traffic from
// one service instance.
//
//	go run ./examples/ordertotals
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/rollout/ddl"
)

const (
	migration = "orders_move_amount"
	orders    = 20_000
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
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

func plan() rollout.Plan {
	return rollout.Plan{
		Migration: migration,
		ExpandOps: []ddl.Op{ddl.AddTable{Table: "order_totals",
			Columns: "order_id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, currency text NOT NULL"}},
		Expand: []rollout.Step{{SQL: `ALTER TABLE orders ALTER COLUMN amount_cents DROP NOT NULL`,
			Down: "-- schemashift:ignore set-not-null\nALTER TABLE orders ALTER COLUMN amount_cents SET NOT NULL"}},
		Backfills: []backfill.Job{{
			Name: migration, Table: "orders", Columns: []string{"amount_cents"}, Version: "v1",
			Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
				for _, r := range rows {
					id := r["id"].(int64)
					if _, err := tx.ExecContext(ctx, `INSERT INTO order_totals VALUES ($1, $2::numeric / 100, $3)
						ON CONFLICT (order_id) DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency`,
						id, r["amount_cents"], currency(id)); err != nil {
						return 0, err
					}
				}
				return int64(len(rows)), nil
			},
			// What Func computes, in SQL, for verification inside the database.
			Check: &backfill.Into{Table: "order_totals", Key: []string{"order_id"}, Columns: []backfill.Assign{
				{Column: "order_id", Expr: "id"}, {Column: "amount", Expr: "amount_cents / 100.0"},
				{Column: "currency", Expr: "CASE WHEN id % 4 = 0 THEN 'USD' ELSE 'EUR' END"}}},
		}},
		ContractOps: []ddl.Op{ddl.DropColumn{Table: "orders", Column: "amount_cents"}},
		Thresholds:  rollout.Thresholds{ShadowConsistency: 0.99, MinComparisons: 200, Window: time.Second},
	}
}

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
		err := db.QueryRowxContext(ctx, `SELECT (amount * 100)::bigint, currency FROM order_totals WHERE order_id = $1`, id).Scan(&o.AmountCents, &o.Currency)
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
	_, err := q.ExecContext(ctx, `INSERT INTO order_totals VALUES ($1, $2::numeric / 100, $3)
		ON CONFLICT (order_id) DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency`, o.ID, o.AmountCents, o.Currency)
	return err
}

func run(ctx context.Context, out io.Writer) error {
	srv, err := pgtest.Start(ctx, pgtest.Options{URLEnv: "DATABASE_URL"})
	if err != nil {
		return err
	}
	defer srv.Close()
	url, err := srv.CreateDatabase(ctx, "ordertotals")
	if err != nil {
		return err
	}
	db, err := sqlx.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(20)
	if _, err := db.ExecContext(ctx, `CREATE TABLE orders (id bigint PRIMARY KEY, amount_cents bigint NOT NULL);
		INSERT INTO orders SELECT i, (i * 37) % 100000 FROM generate_series(1, `+fmt.Sprint(orders)+`) i`); err != nil {
		return err
	}

	coord, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan()}, rollout.WithAgeOut(3*time.Second))
	if err != nil {
		return err
	}
	svc, err := rollout.Start(ctx, db, rollout.ServiceConfig{Service: "orders-api", Build: "v7", InstanceID: "orders-api-1",
		Plans: []rollout.Plan{plan()}, Heartbeat: 200 * time.Millisecond, Poll: 100 * time.Millisecond})
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

	// Traffic: read an order, write a changed amount, add new orders.
	tctx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var created, failed atomic.Int64
	var firstErr atomic.Value
	wg.Go(func() {
		for i := int64(0); tctx.Err() == nil; i++ {
			id := 1 + (i*7919)%orders
			var err error
			switch i % 3 {
			case 0:
				_, err = reads.Read(tctx, id)
			case 1:
				err = writes.Write(tctx, Order{ID: id, AmountCents: i % 5000, Currency: currency(id)})
			case 2:
				n := orders + created.Add(1)
				err = writes.Write(tctx, Order{ID: n, AmountCents: n % 900, Currency: currency(n)})
			}
			if err != nil && tctx.Err() == nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			time.Sleep(time.Millisecond)
		}
	})

	for {
		st, err := rollout.Get(ctx, db, migration)
		if err != nil {
			stopTraffic()
			wg.Wait()
			return err
		}
		if st.Phase == rollout.Contracted {
			break
		}
		switch st.Phase {
		case rollout.Backfill:
			err = coord.RunBackfills(ctx, migration, backfill.WithChunkSize(1000, 200, 5000))
		case rollout.Verify:
			var reps []backfill.Report
			if reps, err = coord.VerifyBackfills(ctx, migration, backfill.VerifyOptions{}); err == nil {
				fmt.Fprintf(out, "  verify: %d orders compared with order_totals by checksum, %d divergent\n", reps[0].Compared, reps[0].Divergent)
			}
		}
		if err == nil {
			var next rollout.Status
			var ready rollout.Readiness
			next, ready, err = coord.AdvanceWhenMet(ctx, rollout.Request{Migration: migration, Actor: "ordertotals", Reason: "gate met",
				Confirm: st.Phase == rollout.Complete}, 100*time.Millisecond, time.Minute)
			if err == nil {
				fmt.Fprintf(out, "%-10s → %-10s (%s)\n", st.Phase, next.Phase, ready.Gate)
			}
		}
		if err != nil {
			stopTraffic()
			wg.Wait()
			return err
		}
	}
	stopTraffic()
	wg.Wait()

	var rows, totals int64
	if err := db.GetContext(ctx, &rows, `SELECT count(*) FROM orders`); err != nil {
		return err
	}
	if err := db.GetContext(ctx, &totals, `SELECT count(*) FROM orders o JOIN order_totals t ON t.order_id = o.id`); err != nil {
		return err
	}
	want := orders + created.Load()
	fmt.Fprintf(out, "orders: %d expected, %d present, %d with their total; %d failed requests\n", want, rows, totals, failed.Load())
	if rows != want || totals != want || failed.Load() != 0 {
		err, _ := firstErr.Load().(error)
		return errors.Join(fmt.Errorf("orders lost or requests failed"), err)
	}
	fmt.Fprintln(out, "0 orders lost; amount_cents dropped.")
	return nil
}
