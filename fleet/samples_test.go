package fleet_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/ledger"
)

// hostileID is an instance id with what a statement, a page or a key
// could trip on: slashes, quotes, markup, a percent sign, a newline, a
// statement's end and a comment.
const hostileID = "api/1 \"<b>x</b>\" 'q' 100%\n; DROP TABLE schemashift_heartbeat_samples; --"

// comparisons reports n shadow comparisons of m, the first matched of them
// matching.
func comparisons(t *testing.T, in *fleet.Instance, m string, matched, n int) {
	for k := range n {
		in.Observer().ObserveComparison(t.Context(), dualwrite.Comparison{Migration: m, Stage: flags.Shadow, Match: k < matched})
	}
}

func call(t *testing.T, in *fleet.Instance, m string, o dualwrite.Origin, d time.Duration, failed bool) {
	c := dualwrite.Call{Migration: m, Stage: flags.Shadow, Origin: o, Duration: d}
	if failed {
		c.Err = assert.AnError
	}
	in.Observer().ObserveCall(t.Context(), c)
}

func byID(h fleet.History) map[string][]fleet.Sample {
	out := map[string][]fleet.Sample{}
	for _, in := range h.Instances {
		out[in.ID] = in.Samples
	}
	return out
}

// Each heartbeat stores its window as a sample at its clock's time; the
// series read back per instance (a hostile id kept whole), between the
// times asked, with the fleet's consistency per step; a window with
// nothing in it stores none.
func TestSamplesOverTime(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		clk := rollouttest.NewClock()
		a, err := fleet.NewInstance(db, "users-api", "v2", []string{"m"}, fleet.WithID(hostileID), fleet.WithClock(clk.Now))
		require.NoError(t, err)
		b, err := fleet.NewInstance(db, "users-api", "v2", []string{"m"}, fleet.WithID("api-2"), fleet.WithClock(clk.Now))
		require.NoError(t, err)

		t1 := clk.Add(10 * time.Second)
		for k := range 3 {
			call(t, a, "m", dualwrite.Old, 2*time.Millisecond, k == 0)
		}
		call(t, a, "m", dualwrite.New, 300*time.Microsecond, false)
		call(t, a, "m", dualwrite.New, 300*time.Microsecond, false)
		comparisons(t, a, "m", 4, 5)
		comparisons(t, b, "m", 5, 5)
		require.NoError(t, a.Beat(ctx))
		require.NoError(t, b.Beat(ctx))

		t2 := clk.Add(10 * time.Second)
		a.Record("m", flags.Shadow, true) // a stage and an old call: no call observed, no comparison
		comparisons(t, b, "m", 0, 1)
		require.NoError(t, a.Beat(ctx))
		require.NoError(t, b.Beat(ctx))

		t3 := clk.Add(10 * time.Second)
		call(t, a, "m", dualwrite.New, time.Millisecond, true)
		require.NoError(t, a.Beat(ctx))
		require.NoError(t, b.Beat(ctx)) // nothing: no sample

		h, err := fleet.Samples(ctx, db, "m", rollouttest.T0, t3)
		require.NoError(t, err)
		assert.True(t, h.Since.Equal(rollouttest.T0) && h.Now.Equal(t3))
		got := byID(h)
		require.Len(t, got, 2, "%v", got)
		require.Len(t, got[hostileID], 2, "the id read back whole; the window with no call stored nothing")
		s := got[hostileID][0]
		assert.True(t, s.At.Equal(t1), "%v", s.At)
		assert.Equal(t, [6]int64{3, 1, 2, 0, 4, 1}, [6]int64{s.OldCalls, s.OldErrors, s.NewCalls, s.NewErrors, s.Matched, s.Mismatched})
		assert.Equal(t, int64(3), s.Latency.Old.Total())
		assert.Equal(t, 3200*time.Microsecond, s.Latency.Old.Quantile(0.99), "the window's histogram, not the running total's")
		assert.Equal(t, 400*time.Microsecond, s.Latency.New.Quantile(0.5))
		s = got[hostileID][1]
		assert.True(t, s.At.Equal(t3), "%v", s.At)
		assert.Equal(t, [6]int64{0, 0, 1, 1, 0, 0}, [6]int64{s.OldCalls, s.OldErrors, s.NewCalls, s.NewErrors, s.Matched, s.Mismatched})
		assert.Equal(t, int64(1), s.Latency.New.Total())
		assert.Zero(t, s.Latency.Old.Total(), "this window's calls only")
		require.Len(t, got["api-2"], 2)
		assert.True(t, got["api-2"][1].At.Equal(t2))
		assert.Equal(t, int64(1), got["api-2"][1].Mismatched)

		// The fleet's consistency: both instances' comparisons at t1, b's
		// at t2, none at t3.
		cons := h.Consistency(0)
		require.Len(t, cons, 2)
		assert.True(t, cons[0].At.Equal(t1))
		assert.Equal(t, fleet.Consistency{Matched: 9, Mismatched: 1, Ratio: 0.9}, cons[0].Consistency)
		assert.True(t, cons[1].At.Equal(t2))
		assert.Equal(t, fleet.Consistency{Mismatched: 1}, cons[1].Consistency)
		// In steps of a minute: one point (T0 + 10 s … T0 + 30 s fall in
		// the minute after midnight), at its last heartbeat.
		cons = h.Consistency(time.Minute)
		require.Len(t, cons, 1)
		assert.True(t, cons[0].At.Equal(t2))
		assert.Equal(t, fleet.Consistency{Matched: 9, Mismatched: 2, Ratio: 9.0 / 11}, cons[0].Consistency)
		merged := byID(h.Every(time.Minute))
		require.Len(t, merged[hostileID], 1)
		s = merged[hostileID][0]
		assert.True(t, s.At.Equal(t3))
		assert.Equal(t, [6]int64{3, 1, 3, 1, 4, 1}, [6]int64{s.OldCalls, s.OldErrors, s.NewCalls, s.NewErrors, s.Matched, s.Mismatched})
		assert.Equal(t, int64(3), s.Latency.New.Total(), "the histograms add up")
		assert.Len(t, byID(h.Every(0))[hostileID], 2, "a step of zero merges nothing of two times")

		// After since, up to now: the bounds are the clock's times.
		h, err = fleet.Samples(ctx, db, "m", t1, t2)
		require.NoError(t, err)
		got = byID(h)
		assert.Len(t, got, 1, "a's samples are at t1 (not after it) and t3 (after now)")
		assert.Len(t, got["api-2"], 1)
		h, err = fleet.Samples(ctx, db, "other", rollouttest.T0, t3)
		require.NoError(t, err)
		assert.Empty(t, h.Instances)
		assert.NotNil(t, h.Instances)
	})
}

// Each heartbeat prunes its instance's samples of each migration to the
// retention, by the clock: those older than the age go (at a heartbeat
// with nothing to sample too), and a clock that stands still keeps no
// more than the row cap, the last ones. Another instance's samples, and
// the instance's of another migration, stay.
func TestSamplesRetention(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		clk := rollouttest.NewClock()
		a, err := fleet.NewInstance(db, "users-api", "v2", []string{"m", "m2"}, fleet.WithID("a"), fleet.WithClock(clk.Now),
			fleet.WithSampleRetention(time.Hour, 5))
		require.NoError(t, err)
		b, err := fleet.NewInstance(db, "users-api", "v2", []string{"m"}, fleet.WithID("b"), fleet.WithClock(clk.Now))
		require.NoError(t, err)
		ats := func(id, m string) []time.Time {
			t.Helper()
			h, err := fleet.Samples(ctx, db, m, rollouttest.T0.Add(-time.Hour), clk.Now().Add(time.Hour))
			require.NoError(t, err)
			var out []time.Time
			for _, s := range byID(h)[id] {
				out = append(out, s.At)
			}
			return out
		}

		var at []time.Time
		for range 4 {
			at = append(at, clk.Add(20*time.Minute))
			comparisons(t, a, "m", 1, 1)
			comparisons(t, b, "m", 1, 1)
			require.NoError(t, a.Beat(ctx))
			require.NoError(t, b.Beat(ctx))
		}
		comparisons(t, a, "m2", 1, 1)
		require.NoError(t, a.Beat(ctx))
		m2 := at[3]
		assert.Equal(t, at, ats("a", "m"), "the first is an hour old, not older")
		clk.Add(time.Minute)
		require.NoError(t, a.Beat(ctx)) // nothing to sample: the prune runs all the same
		assert.Equal(t, at[1:], ats("a", "m"), "older than an hour: gone")
		assert.Equal(t, at, ats("b", "m"), "b's own retention is the default's")
		assert.Equal(t, []time.Time{m2}, ats("a", "m2"))

		// The clock stands still: eight samples at one time, five kept,
		// the last five.
		now := clk.Now()
		for k := range 8 {
			comparisons(t, a, "m", k+1, k+1)
			require.NoError(t, a.Beat(ctx))
		}
		h, err := fleet.Samples(ctx, db, "m", now.Add(-time.Second), now)
		require.NoError(t, err)
		samples := byID(h)["a"]
		var kept []int64
		for _, s := range samples {
			assert.True(t, s.At.Equal(now))
			kept = append(kept, s.Matched)
		}
		assert.Equal(t, []int64{4, 5, 6, 7, 8}, kept, "the cap keeps the last rows, older ones at other times gone first")
		assert.Equal(t, []time.Time{m2}, ats("a", "m2"), "another migration's samples are pruned on their own")
		assert.Len(t, ats("b", "m"), 4)

		// Over an hour on, a heartbeat of nothing empties a's series.
		clk.Add(2 * time.Hour)
		require.NoError(t, a.Beat(ctx))
		assert.Empty(t, ats("a", "m"))
		assert.Empty(t, ats("a", "m2"))
		assert.Len(t, ats("b", "m"), 4)
	})
}

// The retention refuses an age that is not positive and a negative cap.
func TestSampleRetentionRefusesBadValues(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	for _, o := range []fleet.Option{fleet.WithSampleRetention(0, 5), fleet.WithSampleRetention(-time.Hour, 0), fleet.WithSampleRetention(time.Hour, -1)} {
		_, err := fleet.NewInstance(db, "users-api", "v1", nil, o)
		require.ErrorIs(t, err, fleet.ErrInvalidArgument)
	}
	_, err := fleet.NewInstance(db, "users-api", "v1", nil, fleet.WithSampleRetention(time.Hour, 0))
	require.NoError(t, err, "0 rows: the default cap for the age")
}

// A ledger an older build made (version 6, before the samples table)
// serves this build as it is: the samples table is an addition outside
// the versions, so readers check it as current, a heartbeat records its
// totals and no sample, and an Ensure adds the table without raising the
// version (builds of version 6 that know nothing of samples keep
// starting beside this one); the next heartbeat records a sample.
func TestSamplesOnALedgerOfAnOlderBuild(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		d := dbtest.Dialect(t, db)
		require.Equal(t, 6, ledger.SchemaVersion())
		for _, ddl := range d.LedgerSchema() {
			db.MustExecContext(ctx, ddl)
		}
		db.MustExecContext(ctx, d.CreateLedgerVersion())
		db.MustExecContext(ctx, d.InsertLedgerVersion(), 6)
		at := rollouttest.T0.Add(-time.Hour).Format("2006-01-02 15:04:05.000000+00:00")
		db.MustExecContext(ctx, `INSERT INTO schemashift_instances (instance_id, migration, service, build_version, first_seen, last_seen,
			matched, mismatched, old_total, new_total) VALUES ($1, 'm', 'users-api', 'v1', $2, $2, 90, 10, 7, 3)`, hostileID, at)
		require.NoError(t, ledger.Check(ctx, db), "version 6 is this build's")

		clk := rollouttest.NewClock()
		in, err := fleet.NewInstance(db, "users-api", "v2", []string{"m"}, fleet.WithID(hostileID), fleet.WithClock(clk.Now))
		require.NoError(t, err)
		comparisons(t, in, "m", 1, 2)
		clk.Add(time.Second)
		require.NoError(t, in.Beat(ctx), "a heartbeat without the samples table")
		sum, err := fleet.Sum(ctx, db, "m")
		require.NoError(t, err)
		assert.Equal(t, fleet.Totals{Matched: 91, Mismatched: 11, OldTotal: 7, NewTotal: 3}, sum, "its totals are recorded")
		h, err := fleet.Samples(ctx, db, "m", rollouttest.T0.Add(-2*time.Hour), clk.Now())
		require.NoError(t, err, "no table, no samples: not an error")
		assert.Empty(t, h.Instances)

		require.NoError(t, ledger.Ensure(ctx, db))
		var version int
		require.NoError(t, db.GetContext(ctx, &version, d.LedgerVersion()))
		assert.Equal(t, 6, version, "the addition leaves the version as it is, for the builds of version 6")
		require.NoError(t, ledger.Check(ctx, db))

		comparisons(t, in, "m", 1, 2)
		now := clk.Add(time.Second)
		require.NoError(t, in.Beat(ctx))
		h, err = fleet.Samples(ctx, db, "m", rollouttest.T0, now)
		require.NoError(t, err)
		require.Len(t, h.Instances, 1)
		assert.Equal(t, hostileID, h.Instances[0].ID)
		require.Len(t, h.Instances[0].Samples, 1, "sampled once the table is there")
		assert.Equal(t, fleet.Consistency{Matched: 1, Mismatched: 1, Ratio: 0.5}, h.Instances[0].Samples[0].Consistency())
	})
}

// The prunes are range deletes: the age's on the index of (migration,
// instance, at), the cap's on the key, the number it keeps from one
// step down the key's end. (PostgreSQL plans on statistics: it is given
// a week of samples of 20 instances, analysed, as a table it prunes
// holds; on an empty one either index looks as good.)
func TestSamplePrunesAreRanges(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		require.NoError(t, ledger.Ensure(ctx, db))
		d := dbtest.Dialect(t, db)
		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback() //nolint:errcheck // explains only
		plan := func(stmt string, args ...any) string {
			t.Helper()
			var lines []string
			if dbtest.IsSQLite(t, db) {
				rows, err := tx.QueryxContext(ctx, "EXPLAIN QUERY PLAN "+stmt, args...)
				require.NoError(t, err)
				defer rows.Close()
				for rows.Next() {
					var id, parent, unused int
					var detail string
					require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
					lines = append(lines, detail)
				}
				require.NoError(t, rows.Err())
			} else {
				require.NoError(t, tx.SelectContext(ctx, &lines, "EXPLAIN "+stmt, args...))
			}
			return strings.Join(lines, "\n")
		}
		if !dbtest.IsSQLite(t, db) {
			// A week of a minute's samples for each of 20 instances, and
			// the statistics of them.
			tx.MustExecContext(ctx, `INSERT INTO schemashift_heartbeat_samples (migration, instance_id, seq, at, matched)
				SELECT 'm', CASE WHEN i = 0 THEN 'a' ELSE 'i' || i END, s, timestamptz '2032-01-01' + s * interval '1 minute', 1
				FROM generate_series(0, 19) i, generate_series(1, 10080) s`)
			tx.MustExecContext(ctx, `ANALYZE schemashift_heartbeat_samples`)
		}
		age := plan(d.PruneSamplesBefore(), "m", "a", "2032-01-01 00:00:00.000000+00:00")
		over := plan(d.PruneSamplesOver(), "m", "a", 5)
		if dbtest.IsSQLite(t, db) {
			assert.Contains(t, age, "USING INDEX schemashift_heartbeat_samples_at (migration=? AND instance_id=? AND at<?)", age)
			assert.Regexp(t, `USING (COVERING )?INDEX sqlite_autoindex_schemashift_heartbeat_samples_1 \(migration=\? AND instance_id=\? AND seq<\?\)`, over)
			assert.NotContains(t, over, "SCAN", over)
			return
		}
		assert.Regexp(t, `Index Cond: \(\(migration = 'm'::text\) AND \(instance_id = 'a'::text\) AND \(at < `, age)
		assert.Contains(t, age, "schemashift_heartbeat_samples_at", age)
		assert.NotContains(t, age, "Filter", age)
		assert.Regexp(t, `Index Cond: \(\(migration = 'm'::text\) AND \(instance_id = 'a'::text\) AND \(seq <= `, over)
		assert.Contains(t, over, "schemashift_heartbeat_samples_pkey", over)
		assert.NotContains(t, over, "Filter", over)
	})
}
