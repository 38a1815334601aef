package backfill

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
)

const (
	// walWindow is the window the WAL rate is averaged over: the bucket
	// holds one window of the cap, so that a burst of that much passes
	// and a longer one is paid back.
	walWindow = time.Second
	// walRecheck is the longest a worker waits before it reads the WAL
	// position again.
	walRecheck = 250 * time.Millisecond
)

// WithWALRate caps the write-ahead log the backfill's database writes at
// bytesPerSecond, averaged over one second: before each chunk a worker
// reads the log's position (pg_current_wal_insert_lsn(): the log
// generated, whether written out yet or not) and waits while the log
// written since the backfill began runs ahead of the cap, plus one
// second's worth. The log counted is the server's, all of it: the
// foreground's log leaves the backfill less room, so that what an
// archive or a replica must take in stays under the cap whatever writes
// it (a foreground that alone writes more holds the backfill until it
// slows). A chunk starts only under the cap, so the log may run ahead by
// the chunk's own log per worker. Workers of one Backfill share the
// measure; each process running the job reads the same server's log and
// holds its own workers, so that the cap bounds the log of them all.
// While it holds workers, the job's throttle reason ([State].Throttle)
// says "WAL rate".
//
// It is PostgreSQL only: on SQLite [New] refuses it with an error wrapping
// errors.ErrUnsupported. It is a [Signal] of the backfill's own database,
// consulted with those of [WithSignals].
func WithWALRate(bytesPerSecond int64) Option {
	return func(o *options) error {
		if bytesPerSecond <= 0 {
			return fmt.Errorf("WAL rate: %d bytes per second is not positive", bytesPerSecond)
		}
		o.signals = append(o.signals, &walRate{limit: float64(bytesPerSecond), now: time.Now})
		return nil
	}
}

// walRate is the signal of [WithWALRate]: a bucket of log bytes, filled
// at the cap up to one window's worth and drawn on (into debt) by the log
// written. It is written here rather than with golang.org/x/time/rate
// because that limiter takes at most its burst at once, while one
// reading may find many windows' worth of log written. Safe for
// concurrent use.
type walRate struct {
	limit float64 // bytes per second
	now   func() time.Time

	mu      sync.Mutex
	db      *sqlx.DB // the backfill's, set by supported
	d       dialect.Dialect
	started bool
	pos     int64     // the furthest position read
	tokens  float64   // bytes that may be written now; negative: debt
	at      time.Time // when tokens was reckoned
}

var _ dialectSignal = (*walRate)(nil)

// supported keeps the backfill's database, where the log is read.
func (w *walRate) supported(_ context.Context, db *sqlx.DB, d dialect.Dialect) error {
	if err := d.CheckWAL(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.db, w.d = db, d
	return nil
}

// Throttle implements [Signal].
func (w *walRate) Throttle(ctx context.Context) (Throttle, error) {
	w.mu.Lock()
	db, d := w.db, w.d
	w.mu.Unlock()
	if db == nil {
		return Throttle{}, fmt.Errorf("WAL rate: no database (the signal is the backfill's, bound by New)")
	}
	pos, err := d.WALPosition(ctx, db)
	if err != nil {
		return Throttle{}, err
	}
	return w.observe(pos, w.now()), nil
}

// observe accounts the log up to pos, read at now, and says how long to
// wait for the debt to be paid back: at most walRecheck, so that the log
// is read again soon (the foreground's log adds to the debt meanwhile).
func (w *walRate) observe(pos int64, now time.Time) Throttle {
	w.mu.Lock()
	defer w.mu.Unlock()
	burst := w.limit * walWindow.Seconds()
	if !w.started {
		w.started, w.pos, w.tokens, w.at = true, pos, burst, now
		return Throttle{}
	}
	if now.After(w.at) {
		w.tokens = min(burst, w.tokens+w.limit*now.Sub(w.at).Seconds())
		w.at = now
	}
	// Readings of concurrent workers may arrive out of order: only a
	// position past the furthest one counts.
	if pos > w.pos {
		w.tokens -= float64(pos - w.pos)
		w.pos = pos
	}
	if w.tokens >= 0 {
		return Throttle{}
	}
	debt := time.Duration(-w.tokens / w.limit * float64(time.Second))
	return Throttle{
		Wait:   min(max(debt, time.Millisecond), walRecheck),
		Reason: fmt.Sprintf("WAL rate over %d bytes/s: %d bytes ahead", int64(w.limit), int64(-w.tokens)),
	}
}
