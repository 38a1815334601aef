package backfill

import (
	"context"
	"fmt"
	"time"
)

// Estimate is what a backfill is predicted to cost before it runs, from
// a sample of its chunks run on the real table and rolled back
// ([Backfill.Estimate]). It is a value.
type Estimate struct {
	Job string `json:"job"`
	// Rows is how many rows the job has left to walk: the table's
	// estimate, less what finished chunks walked.
	Rows int64 `json:"rows"`
	// Walked is what the job's finished chunks had walked when the
	// estimate was made: 0 for an estimate before the job's first chunk.
	Walked int64 `json:"walked"`
	// SampleChunks and SampleRows are what the sample walked, from
	// where the job stands; SampleChanged how many of them its statement
	// changed (rows already filled, or written through the new path,
	// are walked and left alone).
	SampleChunks  int   `json:"sample_chunks"`
	SampleRows    int64 `json:"sample_rows"`
	SampleChanged int64 `json:"sample_changed"`
	// ChunkSize is the size the sample's adaptive sizing reached.
	ChunkSize int `json:"chunk_size"`
	// RowsPerSecond is one worker's rate at full pace in the sample:
	// rows over the time of each chunk's boundary walk, transaction and
	// statement.
	RowsPerSecond float64 `json:"rows_per_second"`
	// Pace is what Duration assumes: the rate limit, the duty cycle, or
	// full pace (a latency budget's pace is found as it runs: the
	// estimate is then at full pace, the fastest the budget allows).
	Pace string `json:"pace"`
	// Duration is Rows at that pace, with one worker (several share the
	// database's cores: at most that many times faster).
	Duration time.Duration `json:"duration_ns"`
	// Finish is when a run started at the estimate would end, at that
	// pace, working only inside its run windows ([WithRunWindows]); the
	// estimate's time plus Duration without windows.
	Finish time.Time `json:"finish"`
	// Changed is how many rows the job is predicted to change (Rows at
	// the sample's share of changed rows), and DeadTuples the dead row
	// versions they leave behind for vacuum: one per row a Set job
	// updates, up to one per row a move upserts over.
	Changed    int64 `json:"changed"`
	DeadTuples int64 `json:"dead_tuples"`
	// WALBytes is the write-ahead log predicted (PostgreSQL: the log the
	// server wrote during the sample's statements, per changed row,
	// times Changed; the foreground's log is in it too, so read it at a
	// quiet time or on a copy); -1 where the database keeps none.
	WALBytes int64 `json:"wal_bytes"`
}

// Estimate runs samples chunks of the job from where it stands (the start
// of its table before its first chunk, else its last finished chunk),
// each in a transaction rolled back (nothing is committed; row locks are
// held for the chunk, as a chunk of the real run holds them, within
// [WithMaxLockHold]'s bound), timing each and reading the log it writes,
// and predicts from them the job's duration at its pace, its changed
// rows, dead tuples and log volume. The chunk size adapts between
// samples as the run's would. A Go-mode job's Func runs on the samples:
// its writes through the transaction are rolled back, anything else it
// does is not. It does not move the job's checkpoint, and it may run
// while the job runs (its chunks then lock rows the job's may wait on).
func (b *Backfill) Estimate(ctx context.Context, samples int) (Estimate, error) {
	if samples <= 0 {
		return Estimate{}, fmt.Errorf("estimate backfill %q: %d samples", b.job.Name, samples)
	}
	e := Estimate{Job: b.job.Name, WALBytes: -1}
	total, err := b.estimate(ctx)
	if err != nil {
		return e, fmt.Errorf("estimate backfill %q: %w", b.job.Name, err)
	}
	st, err := b.State(ctx)
	if err != nil {
		return e, fmt.Errorf("estimate backfill %q: %w", b.job.Name, err)
	}
	e.Rows, e.Walked = max(total-st.RowsDone, 0), st.RowsDone
	wal := b.plan.d.CheckWAL() == nil
	var took time.Duration
	var walBytes int64
	size := b.size()
	// From the job's frontier: the rows left are what the run walks.
	lo := st.LastKey
	for range samples {
		start := time.Now()
		hi, err := b.plan.boundary(ctx, b.db, lo, size)
		if err != nil {
			return e, fmt.Errorf("estimate backfill %q: find chunk boundary: %w", b.job.Name, err)
		}
		s := span{Lo: lo, Hi: hi}
		rows := int64(size)
		if hi == nil {
			if rows, err = b.plan.count(ctx, b.db, s); err != nil {
				return e, fmt.Errorf("estimate backfill %q: count tail: %w", b.job.Name, err)
			}
			if rows == 0 {
				break
			}
		}
		changed, logged, err := b.sample(ctx, s, wal)
		if err != nil {
			return e, fmt.Errorf("estimate backfill %q: sample chunk %d: %w", b.job.Name, e.SampleChunks+1, err)
		}
		elapsed := time.Since(start)
		took += elapsed
		walBytes += logged
		e.SampleChunks++
		e.SampleRows += rows
		e.SampleChanged += changed
		size = nextChunkSize(size, rows, elapsed, b.opts)
		if hi == nil {
			break
		}
		lo = hi
	}
	e.ChunkSize = size
	if e.SampleRows == 0 {
		e.Pace = "nothing to walk"
		e.DeadTuples, e.Changed = 0, 0
		if wal {
			e.WALBytes = 0
		}
		return e, nil
	}
	e.RowsPerSecond = float64(e.SampleRows) / max(took.Seconds(), 1e-9)
	rate := e.RowsPerSecond
	switch {
	case b.opts.budget != nil:
		e.Pace = "full pace (a latency budget finds its pace as it runs)"
	case b.opts.dutySet && b.opts.dutyCycle < 1:
		rate *= b.opts.dutyCycle
		e.Pace = fmt.Sprintf("duty cycle %.2f", b.opts.dutyCycle)
	case !b.opts.dutySet && b.plan.d.BackfillForegroundStats() != "":
		e.Pace = fmt.Sprintf("full pace (slower while the database serves a foreground: as fast as keeps %.0f%% of its throughput)", 100*DefaultThroughputKept)
	default:
		e.Pace = "full pace"
	}
	if r := b.opts.rowsPerSecond; r > 0 && r < rate {
		rate = r
		e.Pace = fmt.Sprintf("rate limit %.0f rows/s", r)
	}
	e.Duration = time.Duration(float64(e.Rows) / rate * float64(time.Second))
	e.Finish = finishWithin(b.opts.windows, b.now(), e.Duration)
	if len(b.opts.windows) > 0 {
		e.Pace += ", inside its run windows"
	}
	e.Changed = int64(float64(e.Rows) * float64(e.SampleChanged) / float64(e.SampleRows))
	e.DeadTuples = e.Changed
	if wal {
		e.WALBytes = 0
		if e.SampleChanged > 0 {
			e.WALBytes = int64(float64(walBytes) / float64(e.SampleChanged) * float64(e.Changed))
		}
	}
	return e, nil
}

// sample runs the chunk over s in a transaction it rolls back, and
// returns the rows it changed and, when wal, the log the server wrote
// meanwhile.
func (b *Backfill) sample(ctx context.Context, s span, wal bool) (changed, logged int64, err error) {
	tx, err := b.beginChunk(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback() //nolint:errcheck // the sample's whole point: nothing is kept
	var before int64
	if wal {
		if before, err = b.plan.d.WALPosition(ctx, tx); err != nil {
			return 0, 0, err
		}
	}
	if b.job.Func != nil && b.job.Check != nil {
		if err := b.plan.lockSpan(ctx, tx, s); err != nil {
			return 0, 0, err
		}
	}
	if changed, _, err = b.fill(ctx, tx, s, 0); err != nil {
		return 0, 0, err
	}
	if wal {
		after, err := b.plan.d.WALPosition(ctx, tx)
		if err != nil {
			return 0, 0, err
		}
		logged = after - before
	}
	return changed, logged, tx.Rollback()
}

// finishWithin is when work of d started at now ends, working only inside
// ws (always, without windows).
func finishWithin(ws []Window, now time.Time, d time.Duration) time.Time {
	if len(ws) == 0 {
		return now.Add(d)
	}
	t := now
	for range 100_000 { // a week's windows open at least once: d of years ends well before
		inside, until, _ := windowState(ws, t)
		if !inside {
			t = until
			continue
		}
		if left := until.Sub(t); d <= left {
			return t.Add(d)
		} else {
			d -= left
		}
		t = until
	}
	return t.Add(d)
}
