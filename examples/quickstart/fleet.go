package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

// fleet is the simulated instances of the users service, each with its own
// stage source (the ledger's provider), heartbeat and repository.
type fleet struct {
	services []*rollout.Service
	repos    []*users
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
	counts   counts
	nextID   atomic.Int64

	mu sync.Mutex
	// newPath holds the last name written to each id while its instance
	// evaluated dualwrite or later, so through the new path. Each existing
	// id is written by one instance only, so the last write is known.
	newPath map[int64]User
}

type counts struct {
	reads, writes, inserted, errors atomic.Int64
	busy                            atomic.Int64 // writes retried after SQLite was busy
	matched, mismatched             atomic.Int64
	mu                              sync.Mutex
	diffs                           []string
}

// totals is what the traffic did.
type totals struct {
	reads, writes, inserted, errors, matched, mismatched, busy int64
}

// comparisons counts the shadow comparisons of every instance.
type comparisons struct {
	dualwrite.NopObserver
	c *counts
}

func (o comparisons) ObserveComparison(_ context.Context, c dualwrite.Comparison) {
	if c.Match {
		o.c.matched.Add(1)
		return
	}
	o.c.mismatched.Add(1)
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	if len(o.c.diffs) < 2 {
		for _, d := range c.Diffs {
			o.c.diffs = append(o.c.diffs, d.String())
		}
	}
}

func startFleet(ctx context.Context, db *sqlx.DB, n int, p rollout.Plan) (*fleet, error) {
	f := &fleet{newPath: map[int64]User{}}
	f.nextID.Store(seedRows)
	tctx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	for i := range n {
		svc, err := rollout.Start(ctx, db, rollout.ServiceConfig{
			Service: "users-api", Build: "v2", InstanceID: fmt.Sprintf("users-api-%d", i+1),
			Plans: []rollout.Plan{p}, Heartbeat: 200 * time.Millisecond, Poll: 100 * time.Millisecond,
			Observer: comparisons{c: &f.counts},
		})
		if err != nil {
			f.stop()
			return nil, err
		}
		repo, err := newUsers(db, svc)
		if err != nil {
			_ = svc.Close()
			f.stop()
			return nil, err
		}
		f.services, f.repos = append(f.services, svc), append(f.repos, repo)
		f.wg.Go(func() { f.serve(tctx, ctx, repo, i, n) })
	}
	return f, nil
}

// serve plays requests until traffic ends: two reads for every write;
// some reads land on the rows the legacy job touches. Instance k of n
// updates only the existing ids ≡ k (mod n). Once it evaluates dualwrite,
// half its writes are names with more words than the old shape splits
// back, all through the backfill. Each request runs under the run's ctx,
// so stopping the traffic never cuts one short: a write cancelled
// mid-commit may land unseen, and the count of rows would be off.
func (f *fleet) serve(traffic, ctx context.Context, repo *users, k, n int) {
	for i := 0; traffic.Err() == nil; i++ {
		var err error
		switch {
		case i%3 == 0:
			id := legacyRows + 1 + rand.Int64N(seedRows-legacyRows)
			id += (int64(k) - id%int64(n) + int64(n)) % int64(n)
			if id > seedRows {
				id -= int64(n)
			}
			if i%2 == 0 {
				id = f.nextID.Add(1)
			}
			newPath := repo.Stage(ctx) >= flags.DualWrite // the provider only moves forward here
			given, family := randomName()
			if newPath && i%4 < 2 {
				given, family = multiWordName()
			}
			u := User{ID: id, GivenName: given, FamilyName: family}
			err = f.save(ctx, repo, u)
			if err == nil {
				f.counts.writes.Add(1)
				if id > seedRows {
					f.counts.inserted.Add(1)
				}
				if newPath {
					f.mu.Lock()
					f.newPath[id] = u
					f.mu.Unlock()
				}
			}
		case i%10 == 1:
			_, err = repo.Get(ctx, 1+rand.Int64N(legacyRows))
			f.counts.reads.Add(1)
		default:
			_, err = repo.Get(ctx, 1+rand.Int64N(seedRows))
			f.counts.reads.Add(1)
		}
		if err != nil {
			f.counts.errors.Add(1)
			fmt.Println("request error:", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// save writes u, retrying a write that SQLite turned away because another
// writer (a backfill chunk) held its write lock past busy_timeout: such a
// write committed nothing. It gives up, and the request fails visibly,
// after three tries.
func (f *fleet) save(ctx context.Context, repo *users, u User) error {
	var err error
	for range 3 {
		if err = repo.Save(ctx, u); !sqlite.Busy(err) {
			return err
		}
		f.counts.busy.Add(1)
	}
	return err
}

// waitMismatch waits for the first shadow mismatch and returns the count
// and the first differences.
func (f *fleet) waitMismatch(ctx context.Context, limit time.Duration) (int64, string) {
	deadline := time.Now().Add(limit)
	for f.counts.mismatched.Load() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	f.counts.mu.Lock()
	defer f.counts.mu.Unlock()
	return f.counts.mismatched.Load(), strings.Join(f.counts.diffs, "; ")
}

// newPathIntact checks every id written through the new path against
// what it holds now: kept counts the multi-word names intact, changed
// lists every id not as last written.
func (f *fleet) newPathIntact(ctx context.Context, db *sqlx.DB) (kept int, changed []string, err error) {
	rows, err := db.QueryxContext(ctx, `SELECT id, given_name, family_name FROM users`)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := 0
	for rows.Next() {
		var r struct {
			ID     int64          `db:"id"`
			Given  sql.NullString `db:"given_name"`
			Family sql.NullString `db:"family_name"`
		}
		if err := rows.StructScan(&r); err != nil {
			return 0, nil, err
		}
		u, ok := f.newPath[r.ID]
		if !ok {
			continue
		}
		seen++
		switch {
		case r.Given.String != u.GivenName || r.Family.String != u.FamilyName:
			changed = append(changed, fmt.Sprintf("%d: wrote %q %q, holds %q %q", r.ID, u.GivenName, u.FamilyName, r.Given.String, r.Family.String))
		case strings.Count(u.GivenName+" "+u.FamilyName, " ") > 1:
			kept++
		}
	}
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	if seen != len(f.newPath) {
		changed = append(changed, fmt.Sprintf("%d ids written through the new path are gone", len(f.newPath)-seen))
	}
	return kept, changed, nil
}

// stop ends the traffic, closes the instances and returns the totals.
func (f *fleet) stop() totals {
	f.once.Do(func() {
		if f.cancel != nil {
			f.cancel()
		}
		f.wg.Wait()
		for _, r := range f.repos {
			_ = r.Close()
		}
		for _, s := range f.services {
			_ = s.Close()
		}
	})
	c := &f.counts
	return totals{c.reads.Load(), c.writes.Load(), c.inserted.Load(), c.errors.Load(), c.matched.Load(), c.mismatched.Load(), c.busy.Load()}
}
