package backfill

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/internal/pgerr"
)

// Status is where a job stands.
type Status string

// The statuses of a job. Paused and Cancelled are set from outside (see
// [Pause], [Cancel]); running workers obey them before their next chunk
// statement, and a chunk in flight does not commit after them.
const (
	Running   Status = "running"
	Paused    Status = "paused"
	Cancelled Status = "cancelled"
	Done      Status = "done"
	Failed    Status = "failed"
	// Stalled is never stored: [State] reports it for a running job that
	// no live worker vouches for. A job is stalled when its stored status
	// is running, a worker has run it (it has a heartbeat or a chunk), and,
	// by the clock of whoever reads the state ([WithClock] for
	// [Backfill.State], the caller's for [StateAt], time.Now for [State]),
	// every chunk's lease (done chunks keep the last one they had) and the
	// job's heartbeat have run out. A live
	// worker renews its chunk's lease while the chunk runs, and its Run
	// beats while it works, waits on a throttle or rests between chunks,
	// both every third of its lease ([WithLease]); so a job reads stalled
	// within one lease of its last worker's death, and never while a
	// worker lives. [Progress].Stall names the worker and since when.
	Stalled Status = "stalled"
)

// Errors a caller can branch on.
var (
	// ErrDefinitionChanged: a job of that name exists with another
	// definition; it is not resumed. Finish or drop the old job, or pick a
	// new name.
	ErrDefinitionChanged = errors.New("backfill job definition changed")
	// ErrCancelled: the job was cancelled through the table.
	ErrCancelled = errors.New("backfill job cancelled")
	// ErrWrongStatus: a job cannot be paused, resumed or cancelled from
	// the status it is in (a done job cannot be paused, say).
	ErrWrongStatus = errors.New("backfill job is not in a status that allows it")
	// ErrUnknownJob: no job of that name exists.
	ErrUnknownJob = errors.New("unknown backfill job")
)

// schemaLock is the advisory lock that keeps concurrent first runs from
// racing on CREATE TABLE.
const schemaLock = 7215837262348120001

// columnNames are the names of cols.
func columnNames(cols []dialect.Column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// EnsureSchema creates the checkpoint tables if they do not exist, or
// upgrades them. When they are current it runs no DDL at all, so that it
// takes no lock running workers could deadlock with. Given a pool, it
// runs in a transaction of its own, retried on a deadlock; given a
// transaction, in that one, where it commits or rolls back with the
// caller's work.
func EnsureSchema(ctx context.Context, db DB) error {
	h, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return fmt.Errorf("ensure backfill schema: %w", err)
	}
	cols, runs, err := schemaNow(ctx, d, h)
	if err != nil {
		return fmt.Errorf("ensure backfill schema: %w", err)
	}
	// The dialect's DDL is none when the tables are current.
	if d.BackfillSchema(cols, runs) == "" {
		return nil
	}
	pool, ok := h.(beginner)
	if !ok { // the caller's transaction: no retry can be inside it
		return ensureSchemaIn(ctx, d, h)
	}
	for attempt := 0; attempt < 5; attempt++ {
		if err = ensureSchema(ctx, d, pool); pgerr.Classify(err) != pgerr.Deadlock {
			return err
		}
	}
	return err
}

// beginner begins transactions: a pool or a connection.
type beginner interface {
	BeginTxx(ctx context.Context, opts *sql.TxOptions) (*sqlx.Tx, error)
}

func ensureSchema(ctx context.Context, d dialect.Dialect, db beginner) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ensure backfill schema: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err := ensureSchemaIn(ctx, d, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ensure backfill schema: %w", err)
	}
	return nil
}

// ensureSchemaIn creates or upgrades the tables in tx, under the schema's
// lock.
func ensureSchemaIn(ctx context.Context, d dialect.Dialect, tx dialect.Conn) error {
	if err := d.LockTx(ctx, tx, schemaLock); err != nil {
		return fmt.Errorf("ensure backfill schema: %w", err)
	}
	// Read again under the lock: another process may have upgraded them.
	have, runs, err := schemaNow(ctx, d, tx)
	if err != nil {
		return fmt.Errorf("ensure backfill schema: %w", err)
	}
	ddl := d.BackfillSchema(have, runs)
	if ddl == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("ensure backfill schema: %w", err)
	}
	return nil
}

// schemaNow reads how the checkpoint tables stand: schemashift_backfills'
// columns, and whether schemashift_backfill_runs (the last table added)
// exists.
func schemaNow(ctx context.Context, d dialect.Dialect, q dialect.Conn) (cols []string, runs bool, err error) {
	have, err := d.Columns(ctx, q, ident.Table{Name: "schemashift_backfills"})
	if err != nil {
		return nil, false, err
	}
	r, err := d.Columns(ctx, q, ident.Table{Name: "schemashift_backfill_runs"})
	if err != nil {
		return nil, false, err
	}
	return columnNames(have), len(r) > 0, nil
}

// now is time.Now as the clock reads: for what no Backfill runs (Pause,
// State), which has no [WithClock].
func now() time.Time { return dialect.Tick(time.Now()) }

// now reads the Backfill's clock once.
func (b *Backfill) now() time.Time { return dialect.Tick(b.opts.now()) }

// chunk is a leased span of keys.
type chunk struct {
	Seq      int64
	Span     span
	Attempts int
	Scanned  int64 // known when claimed: the chunk's size, or the tail's count
	// Retaken: taken over from a lease that ran out or was given back,
	// not added by this claim; an open-ended tail's count may be old.
	Retaken bool
}

func encodeKey(k Key) any {
	if k == nil {
		return nil
	}
	b, _ := json.Marshal(k)
	return string(b)
}

func decodeKey(raw sql.NullString) (Key, error) {
	if !raw.Valid {
		return nil, nil
	}
	var k Key
	if err := json.Unmarshal([]byte(raw.String), &k); err != nil {
		return nil, fmt.Errorf("decode checkpoint key: %w", err)
	}
	return k, nil
}

// register creates the job's row, or checks that the existing one has the
// same definition. It returns the job's status.
func register(ctx context.Context, d dialect.Dialect, db *sqlx.DB, j Job, hash string, estimate int64, now time.Time) (Status, error) {
	if _, err := db.ExecContext(ctx, d.BackfillRegister(), j.Name, hash, j.Table, estimate, dialect.Stamp(now)); err != nil {
		return "", fmt.Errorf("register backfill %q: %w", j.Name, err)
	}
	var row struct {
		Hash   string `db:"definition_hash"`
		Status Status `db:"status"`
	}
	if err := db.GetContext(ctx, &row, d.BackfillDefinition(), j.Name); err != nil {
		return "", fmt.Errorf("register backfill %q: %w", j.Name, err)
	}
	if row.Hash != hash {
		return "", fmt.Errorf("register backfill %q: %w (checkpoint has definition %s, this job is %s)", j.Name, ErrDefinitionChanged, row.Hash, hash)
	}
	return row.Status, nil
}

// errNoChunk means no chunk can be had now: others hold the last leases,
// or the job is paused.
var errNoChunk = errors.New("no chunk available")

// claim leases the next chunk for worker: an expired lease first (or one
// the worker itself held before a restart), else a new chunk of size rows
// past the frontier. It returns (nil, status) when the job is not running
// or is finished.
//
// guesses are the boundaries a look-ahead found (see lookahead), and
// short its sign of the table's tail, or nil; busy says the worker has
// just finished a chunk, and skips the idle check (a round trip) that
// keeps idle and paused workers from taking write locks.
func (b *Backfill) claim(ctx context.Context, worker string, size int, guesses []boundaryGuess, short *boundaryGuess, busy bool) (*chunk, Status, error) {
	if !busy {
		st, idle, err := b.idle(ctx, worker)
		if err != nil {
			return nil, "", err // the claim's retry counts the failed attempt
		}
		b.ownTx.Add(1)
		switch {
		case idle:
			return nil, Running, errNoChunk
		case st != Running:
			return nil, st, nil
		}
	}
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	var job claimedJob
	if err := tx.GetContext(ctx, &job, b.plan.d.BackfillClaimJob(), b.job.Name); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, "", fmt.Errorf("claim chunk: %w %q", ErrUnknownJob, b.job.Name)
		}
		return nil, "", err
	}
	if job.Status != Running {
		return nil, job.Status, tx.Commit()
	}
	// One reading of the clock for the whole claim: what ran out, and the
	// new lease's start and end.
	at := b.now()
	now, until := dialect.Stamp(at), dialect.Stamp(at.Add(b.opts.lease))
	var taken struct {
		Seq      int64          `db:"seq"`
		Lo       sql.NullString `db:"lo"`
		Hi       sql.NullString `db:"hi"`
		Attempts int            `db:"attempts"`
		Scanned  int64          `db:"scanned"`
	}
	err = tx.GetContext(ctx, &taken, b.plan.d.BackfillTakeLease(), b.job.Name, worker, now, until)
	switch {
	case err == nil:
		lo, err := decodeKey(taken.Lo)
		if err != nil {
			return nil, "", err
		}
		hi, err := decodeKey(taken.Hi)
		if err != nil {
			return nil, "", err
		}
		return &chunk{Seq: taken.Seq, Span: span{Lo: lo, Hi: hi}, Attempts: taken.Attempts, Scanned: taken.Scanned, Retaken: true}, Running, tx.Commit()
	case !errors.Is(err, sql.ErrNoRows):
		return nil, "", err
	}

	// finish ends an exhausted job once no chunk is leased.
	finish := func() (*chunk, Status, error) {
		var leased int
		if err := tx.GetContext(ctx, &leased, b.plan.d.BackfillCountLeased(), b.job.Name); err != nil {
			return nil, "", err
		}
		if leased > 0 {
			return nil, Running, errors.Join(errNoChunk, tx.Commit())
		}
		if _, err := tx.ExecContext(ctx, b.plan.d.BackfillDone(), b.job.Name, now); err != nil {
			return nil, "", err
		}
		return nil, Done, tx.Commit()
	}
	if job.Exhausted {
		return finish()
	}

	lo, err := decodeKey(job.Frontier)
	if err != nil {
		return nil, "", err
	}
	scanned := int64(size)
	var hi Key
	most := size + size/10
	if b.opts.rowsPerSecond > 0 {
		most = size // the rate limit let size rows go (see reserve)
	}
	tail := int64(-1) // the rows past lo, when counted
	if guess := pick(guesses, lo, size, most); guess != nil {
		// Found while the last chunk ran: the key guess.size rows past
		// the frontier then (rows written since move it no more than they
		// would a boundary found here, in a snapshot of READ COMMITTED).
		hi, scanned = guess.hi, int64(guess.size)
	} else {
		if short.tailIn(lo, size) {
			// The look-ahead found fewer than size rows past the frontier:
			// counted here, they are the tail unless rows written since
			// make size or more. A count is one walk of them; a boundary
			// that is not there, then the count, were two.
			if tail, err = b.plan.count(ctx, tx, span{Lo: lo}); err != nil {
				return nil, "", fmt.Errorf("count tail: %w", err)
			}
		}
		if tail < 0 || tail >= int64(size) {
			if hi, err = b.plan.boundary(ctx, tx, lo, size); err != nil {
				return nil, "", fmt.Errorf("find chunk boundary: %w", err)
			}
		}
	}
	exhausted := false
	if hi == nil {
		// Fewer than size rows remain: the tail, open-ended, is the last chunk.
		exhausted = true
		if tail < 0 {
			if tail, err = b.plan.count(ctx, tx, span{Lo: lo}); err != nil {
				return nil, "", fmt.Errorf("count tail: %w", err)
			}
		}
		scanned = tail
		if scanned == 0 {
			// The last chunk was full: the walk ends here, and the job with
			// it unless another worker still holds a chunk.
			if _, err := tx.ExecContext(ctx, b.plan.d.BackfillExhausted(), b.job.Name, now); err != nil {
				return nil, "", err
			}
			return finish()
		}
		if part, ok := b.tailShare(scanned, size); ok {
			// A tail of more than half a chunk, shared out among the
			// workers rather than left to one while the others idle.
			share, err := b.plan.boundary(ctx, tx, lo, int(part))
			if err != nil {
				return nil, "", fmt.Errorf("find chunk boundary: %w", err)
			}
			if share != nil {
				hi, scanned, exhausted = share, part, false
			}
		}
	}
	c := &chunk{Seq: job.NextSeq, Span: span{Lo: lo, Hi: hi}, Attempts: 1, Scanned: scanned}
	if _, err := tx.ExecContext(ctx, b.plan.d.BackfillAddChunk(), b.job.Name, c.Seq, encodeKey(lo), encodeKey(hi), worker, until, scanned, now); err != nil {
		return nil, "", err
	}
	frontier := encodeKey(hi)
	if hi == nil {
		frontier = encodeKey(lo)
	}
	if _, err := tx.ExecContext(ctx, b.plan.d.BackfillAdvance(), b.job.Name, frontier, exhausted, size, now); err != nil {
		return nil, "", err
	}
	return c, Running, tx.Commit()
}

// heldSpan reads c's row again in tx, locked, and
// returns errLeaseLost when it is no longer worker's, and, when c is an
// open-ended tail that an attempt at it has cut since, the cut chunk (c
// itself is left as it is); nil otherwise.
func (b *Backfill) heldSpan(ctx context.Context, tx *sqlx.Tx, worker string, c *chunk) (*chunk, error) {
	var lease chunkLease
	if err := tx.GetContext(ctx, &lease, b.plan.d.BackfillChunkLease(), b.job.Name, c.Seq); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errLeaseLost
		}
		return nil, err
	}
	return lease.held(worker, c)
}

// checkChunk is what a chunk reads before its statement, in one
// statement (a round trip less per chunk than two): that the job still
// runs (errNotRunning, as [Backfill.running]), then, as heldSpan but
// with no lock, that c is still worker's, and whether an attempt at it cut it.
func (b *Backfill) checkChunk(ctx context.Context, tx *sqlx.Tx, worker string, c *chunk) (*chunk, error) {
	var row struct {
		JobStatus Status `db:"job_status"`
		chunkLease
	}
	if err := tx.GetContext(ctx, &row, b.plan.d.BackfillChunkCheck(), b.job.Name, c.Seq); err != nil {
		return nil, err
	}
	if row.JobStatus != Running {
		return nil, errNotRunning
	}
	return row.held(worker, c)
}

// chunkLease is a chunk's row as heldSpan and checkChunk read it; its
// columns are NULL where checkChunk found no row.
type chunkLease struct {
	Worker  sql.NullString `db:"worker"`
	Status  sql.NullString `db:"status"`
	Hi      sql.NullString `db:"hi"`
	Scanned sql.NullInt64  `db:"scanned"`
}

// held reports errLeaseLost when the row is not worker's lease on c, and,
// when c is an open-ended tail the row has cut, the cut chunk.
func (l chunkLease) held(worker string, c *chunk) (*chunk, error) {
	if !l.Worker.Valid || l.Worker.String != worker || l.Status.String != "leased" {
		return nil, errLeaseLost
	}
	if c.Span.Hi != nil || !l.Hi.Valid {
		return nil, nil
	}
	hi, err := decodeKey(l.Hi)
	if err != nil {
		return nil, err
	}
	cut := *c
	cut.Span.Hi, cut.Scanned = hi, l.Scanned.Int64
	return &cut, nil
}

// claimedJob is a job's row as a claim reads it, locked (BackfillClaimJob).
type claimedJob struct {
	Status    Status         `db:"status"`
	Frontier  sql.NullString `db:"frontier"`
	Exhausted bool           `db:"exhausted"`
	NextSeq   int64          `db:"next_seq"`
}

// boundTail makes a retaken open-ended tail c, which rows inserted since
// it was claimed may have grown by any number (its worker died, or the
// job was paused, for hours of inserts), a chunk of at most size rows
// again: one statement over all of them would hold their row locks for
// as long as it takes, past any bound on a chunk's time. It counts the
// tail; one of more than size rows gets the key size rows past its lower
// key as its upper one, and the job's walk goes on from there (its
// frontier moved to that key, no longer exhausted), in one transaction
// under the job's lock, as a claim does; the rows past it are claimed as
// chunks of their own, the last of them a tail again. A tail that grew
// less stays open, its count brought up to date (the rows it walks, for
// the rate limit and the progress). Under the locks it first reads the
// chunk again: errLeaseLost when it is no longer worker's (a worker
// frozen past its lease must not run an open span another has cut), and
// the upper key it has if an attempt whose commit went unanswered gave it
// one.
func (b *Backfill) boundTail(ctx context.Context, worker string, c *chunk, size int) error {
	n, err := b.plan.count(ctx, b.db, c.Span)
	if err != nil {
		return fmt.Errorf("count tail: %w", err)
	}
	b.ownTx.Add(1)
	if n <= c.Scanned {
		return nil
	}
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	var job claimedJob
	if err := tx.GetContext(ctx, &job, b.plan.d.BackfillClaimJob(), b.job.Name); err != nil {
		return fmt.Errorf("bound tail: %w", err)
	}
	cut, err := b.heldSpan(ctx, tx, worker, c)
	if err != nil {
		return fmt.Errorf("bound tail: %w", err)
	}
	commit := func(hi Key, scanned int64) error {
		if err := tx.Commit(); err != nil {
			return err
		}
		b.ownTx.Add(1)
		c.Span.Hi, c.Scanned = hi, scanned
		return nil
	}
	if cut != nil {
		return commit(cut.Span.Hi, cut.Scanned)
	}
	// Only the walk's end as this tail left it moves: the frontier at its
	// lower key, exhausted. Compared as keys: the frontier's text is the
	// database's (jsonb prints its own way).
	frontier, err := decodeKey(job.Frontier)
	if err != nil {
		return err
	}
	var hi Key
	if job.Exhausted && slices.Equal(frontier, c.Span.Lo) && n > int64(size) {
		if hi, err = b.plan.boundary(ctx, tx, c.Span.Lo, size); err != nil {
			return fmt.Errorf("bound tail: find chunk boundary: %w", err)
		}
	}
	scanned := n
	if hi != nil {
		scanned = int64(size)
	}
	if _, err := tx.ExecContext(ctx, b.plan.d.BackfillBoundTail(), b.job.Name, c.Seq, worker, encodeKey(hi), scanned); err != nil {
		return fmt.Errorf("bound tail: %w", err)
	}
	if hi != nil {
		if _, err := tx.ExecContext(ctx, b.plan.d.BackfillReopen(), b.job.Name, encodeKey(hi), dialect.Stamp(b.now())); err != nil {
			return fmt.Errorf("bound tail: %w", err)
		}
	}
	return commit(hi, scanned)
}

// tailShare is the share of a tail of rows rows (fewer than size) that a
// claim takes when this Run has several workers: the tail divided among
// them, when it is more than half a chunk and each share is at least the
// smallest chunk. ok is false when the claim takes the whole tail.
func (b *Backfill) tailShare(rows int64, size int) (part int64, ok bool) {
	w := int64(b.opts.workers)
	if w < 2 || rows <= int64(size)/2 {
		return 0, false
	}
	part = (rows + w - 1) / w
	if part < int64(b.opts.minChunk) || part >= rows {
		return 0, false
	}
	return part, true
}

// idle reads, without a transaction, whether claim would find nothing to
// do: the job not running (st says how it stands), or (idle) its walk
// over and every chunk left leased to a live worker. Idle and paused
// workers poll it, so that they take no write lock meanwhile (SQLite's is
// the database's, and not handed out fairly: a worker polling it could
// keep a live worker from renewing its lease). claim checks again under
// its locks.
func (b *Backfill) idle(ctx context.Context, worker string) (st Status, idle bool, err error) {
	var row struct {
		Status    Status `db:"status"`
		Exhausted bool   `db:"exhausted"`
		Leased    bool   `db:"leased"`
		Claimable bool   `db:"claimable"`
	}
	err = b.db.GetContext(ctx, &row, b.plan.d.BackfillIdle(), b.job.Name, worker, dialect.Stamp(b.now()))
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, fmt.Errorf("claim chunk: %w %q", ErrUnknownJob, b.job.Name)
	}
	if err != nil {
		return "", false, err
	}
	return row.Status, row.Status == Running && row.Exhausted && row.Leased && !row.Claimable, nil
}

// errLeaseLost: the chunk's lease passed to another worker before this one
// committed; its work was rolled back and the other worker's counts.
var errLeaseLost = errors.New("chunk lease lost")

// errNotRunning: the job was paused, cancelled or failed after the chunk
// was claimed; the chunk's transaction is rolled back and its lease given
// back.
var errNotRunning = errors.New("job not running")

// running checks, in the chunk's transaction, that the job still runs,
// holding the job's row to the commit (PostgreSQL): a [Pause] or
// [Cancel] then waits for the chunk to commit, or the chunk sees it and
// rolls back, so that no chunk commits after a pause returned. On SQLite
// the transaction holds the write lock, which does the same.
func (b *Backfill) running(ctx context.Context, tx *sqlx.Tx) error {
	var st Status
	if err := tx.GetContext(ctx, &st, b.plan.d.BackfillStatus(), b.job.Name); err != nil {
		return err
	}
	if st != Running {
		return errNotRunning
	}
	return nil
}

// finish marks the chunk done in the chunk's own transaction, so that its
// rows and its checkpoint commit together, once it has checked that the
// job still runs. The job's row is locked before the chunk's, as claim
// does. An open-ended tail is marked done only while it is open still:
// one cut since (see boundTail) is not the span this attempt walked.
func (b *Backfill) finish(ctx context.Context, tx *sqlx.Tx, worker string, c *chunk, changed int64) error {
	if err := b.running(ctx, tx); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, b.plan.d.BackfillFinishChunk(c.Span.Hi == nil), b.job.Name, c.Seq, worker, changed, dialect.Stamp(b.now()))
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return errLeaseLost
	}
	return nil
}

// renew extends worker's lease on c by one lease from now. It reports
// false when the lease is no longer the worker's (taken over, or the
// chunk done).
func (b *Backfill) renew(ctx context.Context, worker string, c *chunk) (bool, error) {
	res, err := b.db.ExecContext(ctx, b.plan.d.BackfillRenew(), b.job.Name, c.Seq, worker, dialect.Stamp(b.now().Add(b.opts.lease)))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// release gives back worker's lease on c, which did not commit: any
// worker may take the chunk at once, and the attempt is not counted.
func (b *Backfill) release(ctx context.Context, worker string, c *chunk) error {
	_, err := b.db.ExecContext(ctx, b.plan.d.BackfillRelease(), b.job.Name, c.Seq, worker, dialect.Stamp(b.now()))
	return err
}

// beat records that this Backfill's Run lives, for one lease from now. It
// never moves the heartbeat back: a Run with a longer lease may have
// vouched for longer.
func (b *Backfill) beat(ctx context.Context) error {
	_, err := b.db.ExecContext(ctx, b.plan.d.BackfillBeat(), b.job.Name, dialect.Stamp(b.now().Add(b.opts.lease)), b.opts.workerID)
	return err
}

// setStatus changes a job's status from outside (or from a worker).
func setStatus(ctx context.Context, pool DB, name string, to Status, from ...Status) error {
	db, d, err := dialects.Handle(ctx, pool)
	if err != nil {
		return fmt.Errorf("set backfill %q %s: %w", name, to, err)
	}
	// updated_at says when, by the caller's clock; no decision reads it.
	vals := []any{name, string(to), dialect.Stamp(now())}
	for _, s := range from {
		vals = append(vals, string(s))
	}
	res, err := db.ExecContext(ctx, d.BackfillSetStatus(len(from)), vals...)
	if pgerr.UndefinedTable(err) { // no backfill ever ran here
		return fmt.Errorf("set backfill %q %s: %w", name, to, ErrUnknownJob)
	}
	if err != nil {
		return fmt.Errorf("set backfill %q %s: %w", name, to, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	st, err := state(ctx, d, db, name, now())
	if err != nil {
		return fmt.Errorf("set backfill %q %s: %w", name, to, err)
	}
	return fmt.Errorf("set backfill %q %s: %w: the job is %s", name, to, ErrWrongStatus, st.Status)
}

// Pause asks every worker of the job to stop and wait; [Resume] lets them
// go on. It works from any process. A chunk claimed before the pause does
// not run its statement after it, and a chunk in flight either commits
// before Pause returns or rolls back: once Pause returns, no rows are done
// until the job is resumed.
func Pause(ctx context.Context, db DB, name string) error {
	return setStatus(ctx, db, name, Paused, Running)
}

// Resume lets a paused, cancelled or failed job run again.
func Resume(ctx context.Context, db DB, name string) error {
	return setStatus(ctx, db, name, Running, Paused, Cancelled, Failed)
}

// Cancel stops every worker of the job, as [Pause] does; their Run
// returns [ErrCancelled]. The checkpoint stays: [Resume] continues it.
func Cancel(ctx context.Context, db DB, name string) error {
	return setStatus(ctx, db, name, Cancelled, Running, Paused)
}

// Progress is a job's state, as stored: readable from any process without
// running the job.
//
// Its JSON (the CLI's `backfill status --json`, a retrospective's
// backfills) names each field in snake case; durations are in
// nanoseconds (throttled_ns, eta_ns).
type Progress struct {
	Job           string        `json:"job"`
	Table         string        `json:"table"`
	Status        Status        `json:"status"`          // as stored, or Stalled
	Stall         *Stall        `json:"stall,omitempty"` // when Status is Stalled: the worker last seen, and since when
	RowsDone      int64         `json:"rows_done"`       // rows walked in finished chunks
	RowsChanged   int64         `json:"rows_changed"`    // rows the chunks changed
	TotalEstimate int64         `json:"total_estimate"`
	ChunksDone    int64         `json:"chunks_done"`
	ChunksLeased  int64         `json:"chunks_leased"`
	ChunksRedone  int64         `json:"chunks_redone"` // chunks that ran more than once (resumes, lost leases)
	Runs          int64         `json:"runs"`          // times Run started on the job (a resume is a run after the first)
	Retries       int64         `json:"retries"`       // retried chunk or claim failures (lock timeouts, deadlocks, lost connections…)
	Throttled     time.Duration `json:"throttled_ns"`  // time workers waited on throttle signals
	ChunkSize     int           `json:"chunk_size"`
	Throttle      string        `json:"throttle"`
	// Foreground is what the job's pace reads the foreground by: a
	// latency budget's signal ([WithLatencyBudget]: [SourceApplication],
	// [SourceProbe] or [SourceDatabase]), or, by default on PostgreSQL,
	// [SourceDatabase] (see [WithDutyCycle]); "" with a duty cycle given,
	// or on SQLite.
	Foreground string `json:"foreground"`
	// Pace is how the pace stands: the share of time worked and, with a
	// budget, the last reading against the baseline.
	Pace string `json:"pace"`
	// Window is where the job stands among its run windows
	// ([WithRunWindows]), as its workers last wrote it: "inside … until
	// …" or "outside run windows until …"; "" without windows.
	Window string `json:"window"`
	// Rate is rows per second since the job started; ETA follows from it,
	// for a running job only (none when it is paused or stalled).
	Rate       float64       `json:"rate"`
	ETA        time.Duration `json:"eta_ns"`
	LastKey    Key           `json:"last_key"`
	Verify     string        `json:"verify"` // "", "passed" or "failed"
	Divergent  int64         `json:"divergent"`
	Error      string        `json:"error"`
	StartedAt  time.Time     `json:"started_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
	FinishedAt *time.Time    `json:"finished_at"`
}

// Stall is who a [Stalled] job last had, and since when.
type Stall struct {
	// Worker is the worker holding the chunk whose lease ran out last, or,
	// with no chunk leased, the worker of the last Run's heartbeat.
	Worker string `json:"worker"`
	// Since is when the last lease or heartbeat ran out, by the clock of
	// the workers that wrote them: the job has had no live worker since.
	Since time.Time `json:"since"`
}

// State reads a job's progress, as [StateAt] at time.Now. db may be a pool
// or a transaction.
func State(ctx context.Context, db DB, name string) (Progress, error) {
	return StateAt(ctx, db, name, now())
}

// StateAt reads a job's progress as it stands at now: whether the job is
// [Stalled], its rate and ETA are judged at now, by the clock the job's
// workers keep their leases by (see [WithClock]). db may be a pool or a
// transaction, which then sees what it has written itself.
func StateAt(ctx context.Context, db DB, name string, now time.Time) (Progress, error) {
	h, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return Progress{}, fmt.Errorf("read backfill state: %w", err)
	}
	return state(ctx, d, h, name, dialect.Tick(now))
}

func state(ctx context.Context, d dialect.Dialect, db sqlx.QueryerContext, name string, now time.Time) (Progress, error) {
	// Times scan through dialect.Time: SQLite may return them as text.
	var row struct {
		Table     string         `db:"table_name"`
		Status    Status         `db:"status"`
		Frontier  sql.NullString `db:"frontier"`
		Estimate  sql.NullInt64  `db:"total_estimate"`
		ChunkSize sql.NullInt64  `db:"chunk_size"`
		Throttle  string         `db:"throttle"`
		Fg        string         `db:"foreground"`
		Pace      string         `db:"pace"`
		Window    string         `db:"run_window"`
		Verify    string         `db:"verify_status"`
		Divergent sql.NullInt64  `db:"verify_divergent"`
		Runs      int64          `db:"runs"`
		Retries   int64          `db:"retries"`
		Throttled int64          `db:"throttled_ms"`
		Error     string         `db:"error"`
		Started   dialect.Time   `db:"started_at"`
		Updated   dialect.Time   `db:"updated_at"`
		Finished  dialect.Time   `db:"finished_at"`
		Done      int64          `db:"done"`
		Changed   int64          `db:"changed"`
		NDone     int64          `db:"n_done"`
		NLeased   int64          `db:"n_leased"`
		NRedone   int64          `db:"n_redone"`
		Alive     dialect.Time   `db:"alive_until"`
		AliveBy   string         `db:"alive_worker"`
		LastLease dialect.Time   `db:"last_lease"`
		LeasedBy  sql.NullString `db:"leased_worker"`
	}
	err := sqlx.GetContext(ctx, db, &row, d.BackfillState(), name)
	if errors.Is(err, sql.ErrNoRows) || pgerr.UndefinedTable(err) {
		return Progress{}, fmt.Errorf("read backfill state: %w %q", ErrUnknownJob, name)
	}
	if err != nil {
		return Progress{}, fmt.Errorf("read backfill state: %w", err)
	}
	last, err := decodeKey(row.Frontier)
	if err != nil {
		return Progress{}, err
	}
	p := Progress{
		Job: name, Table: row.Table, Status: row.Status, RowsDone: row.Done, RowsChanged: row.Changed,
		TotalEstimate: row.Estimate.Int64, ChunksDone: row.NDone, ChunksLeased: row.NLeased, ChunksRedone: row.NRedone,
		ChunkSize: int(row.ChunkSize.Int64), Throttle: row.Throttle, Foreground: row.Fg, Pace: row.Pace, Window: row.Window, LastKey: last, Verify: row.Verify,
		Divergent: row.Divergent.Int64, Error: row.Error, StartedAt: row.Started.Time, UpdatedAt: row.Updated.Time,
		Runs: row.Runs, Retries: row.Retries, Throttled: time.Duration(row.Throttled) * time.Millisecond,
	}
	end := now
	if !row.Finished.IsZero() {
		finished := row.Finished.Time
		p.FinishedAt, end = &finished, finished
	}
	if secs := end.Sub(row.Started.Time).Seconds(); secs > 0 {
		p.Rate = float64(p.RowsDone) / secs
	}
	if p.Status == Running {
		// The last sign of life: a chunk's lease or a Run's heartbeat.
		alive := row.Alive.Time
		if row.LastLease.After(alive) {
			alive = row.LastLease.Time
		}
		if !alive.IsZero() && now.After(alive) {
			p.Status = Stalled
			p.Stall = &Stall{Worker: row.AliveBy, Since: alive}
			if row.LeasedBy.Valid {
				p.Stall.Worker = row.LeasedBy.String
			}
		}
	}
	if p.Rate > 0 && p.TotalEstimate > p.RowsDone && p.Status == Running {
		p.ETA = time.Duration(float64(p.TotalEstimate-p.RowsDone) / p.Rate * float64(time.Second))
	}
	return p, nil
}
