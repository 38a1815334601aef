package backfill

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/pgerr"
)

// ChunkRecord is one finished chunk of a job, as its checkpoint row keeps
// it: what the board draws a job's rate and chunk times from. Started is
// when its last attempt claimed it, Finished when it committed, both by the
// clock of the worker that ran it ([WithClock]). It is a value.
type ChunkRecord struct {
	Seq      int64     `json:"seq"`
	Rows     int64     `json:"rows"`    // rows walked
	Changed  int64     `json:"changed"` // rows changed
	Attempts int       `json:"attempts"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// History reads the last limit finished chunks of a job (every one when
// limit ≤ 0), oldest first by when they finished. A job with no finished
// chunk has none; a job that does not exist is [ErrUnknownJob].
func History(ctx context.Context, db DB, job string, limit int) ([]ChunkRecord, error) {
	h, d, err := dialects.Handle(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read backfill history: %w", err)
	}
	var n int
	err = sqlx.GetContext(ctx, h, &n, d.BackfillJobExists(), job)
	if pgerr.UndefinedTable(err) || err == nil && n == 0 {
		return nil, fmt.Errorf("read backfill history: %w %q", ErrUnknownJob, job)
	}
	if err != nil {
		return nil, fmt.Errorf("read backfill history: %w", err)
	}
	var rows []struct {
		Seq      int64        `db:"seq"`
		Scanned  int64        `db:"scanned"`
		Changed  int64        `db:"changed"`
		Attempts int          `db:"attempts"`
		Started  dialect.Time `db:"started_at"`
		Finished dialect.Time `db:"finished_at"`
	}
	args := []any{job}
	if limit > 0 {
		args = append(args, limit)
	}
	if err := sqlx.SelectContext(ctx, h, &rows, d.BackfillHistory(limit > 0), args...); err != nil {
		return nil, fmt.Errorf("read backfill history: %w", err)
	}
	out := make([]ChunkRecord, 0, len(rows))
	for _, r := range slices.Backward(rows) {
		out = append(out, ChunkRecord{Seq: r.Seq, Rows: r.Scanned, Changed: r.Changed, Attempts: r.Attempts, Started: r.Started.Time, Finished: r.Finished.Time})
	}
	return out, nil
}
