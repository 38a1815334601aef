package dualwrite_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwritetest"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

const migration = "users_split_name"

type user struct {
	ID         int
	GivenName  string
	FamilyName string
	Email      string `schemashift:"sensitive"`
}

// origins records which origin ran, in order.
type origins struct {
	mu  sync.Mutex
	ran []string
}

func (o *origins) record(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ran = append(o.ran, name)
}

func (o *origins) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ran...)
}

func TestReadFollowsStageTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stage      flags.Stage
		want       string // what the caller gets
		authority  dualwrite.Origin
		shadow     bool
		shadowFrom string
	}{
		{flags.Off, "old", dualwrite.Old, false, ""},
		{flags.DualWrite, "old", dualwrite.Old, false, ""},
		{flags.Shadow, "old", dualwrite.Old, true, "new"},
		{flags.Live, "new", dualwrite.New, true, "old"},
		{flags.Rampdown, "new", dualwrite.New, false, ""},
		{flags.Complete, "new", dualwrite.New, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.stage.String(), func(t *testing.T) {
			t.Parallel()
			flag, _ := flagstest.Flag(t, migration, tt.stage)
			rec := &dualwritetest.Recorder{}
			ran := &origins{}
			read := func(name string) dualwrite.ReadFunc[int, string] {
				return func(_ context.Context, id int) (string, error) {
					ran.record(name)
					return name, nil
				}
			}
			r, err := dualwrite.NewReader(flag, read("old"), read("new"), dualwrite.WithObserver(rec), dualwrite.WithRecheck(false))
			require.NoError(t, err)
			defer r.Close()

			got, err := r.Read(t.Context(), 7)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			r.Wait()

			wantRan := []string{tt.want}
			if tt.shadow {
				wantRan = []string{tt.want, tt.shadowFrom}
			}
			assert.ElementsMatch(t, wantRan, ran.list())
			auth := rec.CallsBy(dualwrite.Authoritative)
			require.Len(t, auth, 1)
			assert.Equal(t, tt.authority, auth[0].Origin)
			assert.Equal(t, dualwrite.Read, auth[0].Op)
			assert.Equal(t, tt.stage, auth[0].Stage)
			shadows := rec.CallsBy(dualwrite.ShadowRole)
			if !tt.shadow {
				assert.Empty(t, shadows)
				assert.Empty(t, rec.Comparisons())
				return
			}
			require.Len(t, shadows, 1)
			assert.NotEqual(t, tt.authority, shadows[0].Origin)
			cmp := rec.Comparisons()
			require.Len(t, cmp, 1)
			assert.False(t, cmp[0].Match, "old and new returned different strings")
			assert.Equal(t, []dualwrite.Diff{{Old: `"old"`, New: `"new"`}}, cmp[0].Diffs,
				"diff is expressed as old vs new whichever origin is authoritative")
		})
	}
}

// The caller gets the authoritative error and value unchanged, even when the
// shadow origin succeeds.
func TestReadReturnsAuthoritativeError(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	rec := &dualwritetest.Recorder{}
	notFound := errors.New("user not found")
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (user, error) { return user{}, notFound },
		func(context.Context, int) (user, error) { return user{ID: 1, GivenName: "Ada"}, nil },
		dualwrite.WithObserver(rec))
	require.NoError(t, err)
	defer r.Close()
	got, err := r.Read(t.Context(), 1)
	assert.Same(t, notFound, err)
	assert.Equal(t, user{}, got)
	r.Wait()
	assert.Empty(t, rec.Mismatches())
	mm := rec.Failures()
	require.Len(t, mm, 1, "the authoritative read's error fails the comparison")
	assert.Equal(t, dualwrite.FaultError, mm[0].Fault)
	// user has a sensitive field, so an error's text (which may quote it)
	// is withheld from the report.
	assert.Equal(t, []dualwrite.Diff{{Path: "error", Old: "*errors.errorString (text withheld)", New: "<nil>"}}, mm[0].Diffs)
}

func TestShadowFaultsNeverReachTheCaller(t *testing.T) {
	t.Parallel()
	ada := user{ID: 1, GivenName: "Ada", FamilyName: "Lovelace", Email: "ada@example.com"}
	tests := []struct {
		name      string
		shadow    dualwrite.ReadFunc[int, user]
		wantErr   error
		wantFault dualwrite.Fault
	}{
		{"error", func(context.Context, int) (user, error) { return user{}, errors.New("relation does not exist") }, nil, dualwrite.FaultError},
		{"panic", func(context.Context, int) (user, error) { panic("boom") }, dualwrite.ErrShadowPanic, dualwrite.FaultPanic},
		{"hang honouring ctx", func(ctx context.Context, _ int) (user, error) {
			<-ctx.Done()
			return user{}, ctx.Err()
		}, dualwrite.ErrShadowTimeout, dualwrite.FaultTimeout},
		// It returns a good result, past the timeout: watching ctx only to
		// know that it is past, as a read that ignored ctx would be.
		{"hang ignoring ctx", func(ctx context.Context, _ int) (user, error) {
			<-ctx.Done()
			return ada, nil
		}, dualwrite.ErrShadowTimeout, dualwrite.FaultTimeout},
	}
	for _, stage := range []flags.Stage{flags.Shadow, flags.Live} {
		for _, tt := range tests {
			t.Run(stage.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				flag, _ := flagstest.Flag(t, migration, stage)
				rec := &dualwritetest.Recorder{}
				good := func(context.Context, int) (user, error) { return ada, nil }
				// The shadow read starts only once Read has returned: a
				// caller that waited for it would never get its result.
				returned := make(chan struct{})
				shadow := func(ctx context.Context, in int) (user, error) {
					<-returned
					return tt.shadow(ctx, in)
				}
				oldRead, newRead := good, shadow
				if stage == flags.Live {
					oldRead, newRead = shadow, good
				}
				// Only a hang meets the timeout: the others' wait for Read
				// to return must not run into it, however loaded the machine.
				timeout := time.Hour
				if tt.wantFault == dualwrite.FaultTimeout {
					timeout = 20 * time.Millisecond
				}
				r, err := dualwrite.NewReader(flag, oldRead, newRead,
					dualwrite.WithObserver(rec), dualwrite.WithShadowTimeout(timeout))
				require.NoError(t, err)
				defer r.Close()

				read := make(chan error, 1)
				var got user
				go func() {
					var err error
					got, err = r.Read(t.Context(), 1)
					read <- err
				}()
				select {
				case err := <-read:
					require.NoError(t, err)
				case <-time.After(10 * time.Second):
					t.Fatal("the caller waits for the shadow read")
				}
				assert.Equal(t, ada, got)
				close(returned)

				r.Wait()
				shadows := rec.CallsBy(dualwrite.ShadowRole)
				require.Len(t, shadows, 1, "every fault is counted")
				require.Error(t, shadows[0].Err)
				if tt.wantErr != nil {
					assert.ErrorIs(t, shadows[0].Err, tt.wantErr)
				}
				// Every fault is a failed comparison: never a match, nor a
				// mismatch of two values.
				cmp := rec.Comparisons()
				require.Len(t, cmp, 1)
				assert.False(t, cmp[0].Match)
				assert.Equal(t, tt.wantFault, cmp[0].Fault)
				assert.False(t, cmp[0].Rechecked, "a failure is not rechecked")
				assert.Empty(t, rec.Mismatches())
				for _, c := range rec.Comparisons() {
					for _, d := range c.Diffs {
						assert.NotContains(t, d.Old+d.New, "ada@example.com")
					}
				}
			})
		}
	}
}

func TestShadowConcurrencyBoundDropsAndCounts(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	rec := &dualwritetest.Recorder{}
	release := make(chan struct{})
	var started atomic.Int32
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (int, error) { return 1, nil },
		func(ctx context.Context, _ int) (int, error) {
			started.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return 1, nil
		},
		dualwrite.WithObserver(rec), dualwrite.WithShadowConcurrency(3), dualwrite.WithShadowTimeout(10*time.Second))
	require.NoError(t, err)
	defer r.Close()
	for range 10 {
		got, err := r.Read(t.Context(), 0)
		require.NoError(t, err)
		require.Equal(t, 1, got)
	}
	drops := rec.Drops()
	assert.Len(t, drops, 7)
	for _, d := range drops {
		assert.Equal(t, dualwrite.DropFull, d.Reason)
	}
	close(release)
	r.Wait()
	assert.Equal(t, int32(3), started.Load())
	assert.Len(t, rec.Comparisons(), 3)
	// Slots are free again.
	_, err = r.Read(t.Context(), 0)
	require.NoError(t, err)
	r.Wait()
	assert.Len(t, rec.Comparisons(), 4)
}

func TestShadowSampleRate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rate     float64
		min, max int
	}{{0, 0, 0}, {1, 1000, 1000}, {0.25, 150, 350}} {
		flag, _ := flagstest.Flag(t, migration, flags.Live)
		var shadows atomic.Int32
		r, err := dualwrite.NewReader(flag,
			func(context.Context, int) (int, error) { shadows.Add(1); return 1, nil },
			func(context.Context, int) (int, error) { return 1, nil },
			dualwrite.WithShadowSampleRate(tt.rate), dualwrite.WithShadowConcurrency(1000))
		require.NoError(t, err)
		for range 1000 {
			_, err := r.Read(t.Context(), 0)
			require.NoError(t, err)
		}
		r.Wait() // Close would cancel a shadow read still in flight
		require.NoError(t, r.Close())
		n := int(shadows.Load())
		assert.GreaterOrEqual(t, n, tt.min, "rate %v", tt.rate)
		assert.LessOrEqual(t, n, tt.max, "rate %v", tt.rate)
	}
}

// Close cancels shadow reads in flight and waits for them; later reads still
// return the authoritative result and start no shadow.
func TestCloseCancelsAndWaits(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	rec := &dualwritetest.Recorder{}
	var exited atomic.Bool
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (int, error) { return 1, nil },
		func(ctx context.Context, _ int) (int, error) {
			<-ctx.Done()
			// A slow cleanup: not synchronisation (Close must wait whatever
			// it takes), only what lets a Close that did not wait show.
			time.Sleep(20 * time.Millisecond)
			exited.Store(true)
			return 0, ctx.Err()
		},
		dualwrite.WithObserver(rec), dualwrite.WithShadowTimeout(time.Hour))
	require.NoError(t, err)
	_, err = r.Read(t.Context(), 0)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.True(t, exited.Load(), "Close returned before the shadow read")
	require.NoError(t, r.Close(), "Close is idempotent")
	shadows := rec.CallsBy(dualwrite.ShadowRole)
	require.Len(t, shadows, 1)
	assert.ErrorIs(t, shadows[0].Err, context.Canceled)

	assert.Empty(t, rec.Comparisons(), "a read Close cancelled is not the shadow path's failure")
	drops := rec.Drops()
	require.Len(t, drops, 1, "it is dropped")
	assert.Equal(t, dualwrite.DropClosed, drops[0].Reason)

	got, err := r.Read(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, 1, got)
	drops = rec.Drops()
	require.Len(t, drops, 2)
	assert.Equal(t, dualwrite.DropClosed, drops[1].Reason)
}

// The caller's ctx ending right after Read returns does not cancel the
// shadow read, which keeps the ctx's values.
func TestShadowOutlivesCallerContext(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	rec := &dualwritetest.Recorder{}
	type key struct{}
	var sawValue atomic.Value
	cancelled := make(chan struct{})
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (int, error) { return 1, nil },
		func(ctx context.Context, _ int) (int, error) {
			<-cancelled // the caller's ctx has ended
			sawValue.Store(ctx.Value(key{}))
			return 1, ctx.Err()
		}, dualwrite.WithObserver(rec), dualwrite.WithShadowTimeout(time.Hour)) // no wait here may meet a timeout
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "request-42"))
	_, err = r.Read(ctx, 0)
	require.NoError(t, err)
	cancel()
	close(cancelled)
	r.Wait()
	assert.Equal(t, "request-42", sawValue.Load())
	cmp := rec.Comparisons()
	require.Len(t, cmp, 1)
	assert.True(t, cmp[0].Match)
}

// A panic of the authoritative read is the caller's, as it would be without
// the adapter; the shadow read is not compared against a missing result.
func TestAuthoritativePanicPropagates(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	rec := &dualwritetest.Recorder{}
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (int, error) { panic("old path bug") },
		func(context.Context, int) (int, error) { return 1, nil },
		dualwrite.WithObserver(rec))
	require.NoError(t, err)
	defer r.Close()
	assert.PanicsWithValue(t, "old path bug", func() { _, _ = r.Read(t.Context(), 0) })
	r.Wait()
	assert.Empty(t, rec.Comparisons())
}

func TestFlagFallbackCountedThroughSameObserver(t *testing.T) {
	t.Parallel()
	rec := &dualwritetest.Recorder{}
	ev, p := flagstest.Evaluator(t, map[string]flags.Stage{migration: flags.Live}, flags.WithObserver(rec))
	flag, err := ev.Flag(migration)
	require.NoError(t, err)
	ran := &origins{}
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (string, error) { ran.record("old"); return "old", nil },
		func(context.Context, int) (string, error) { ran.record("new"); return "new", nil },
		dualwrite.WithObserver(rec), dualwrite.WithShadowSampleRate(0))
	require.NoError(t, err)
	defer r.Close()

	got, err := r.Read(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, "new", got)

	for _, fault := range []func(){
		func() { p.Fail(migration, nil) },
		func() { p.SetRaw(migration, "LIVE-ish") },
	} {
		fault()
		got, err = r.Read(t.Context(), 0)
		require.NoError(t, err)
		assert.Equal(t, "new", got, "last good stage (live) keeps reading new")
	}
	fb := rec.Fallbacks()
	require.Len(t, fb, 2)
	assert.Equal(t, flags.ProviderError, fb[0].Reason)
	assert.Equal(t, flags.UnknownVariant, fb[1].Reason)
	assert.Equal(t, []string{"new", "new", "new"}, ran.list())
}

func TestNewReaderRejectsBadOptions(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Off)
	read := func(context.Context, int) (int, error) { return 0, nil }
	for name, opt := range map[string]dualwrite.Option{
		"timeout":      dualwrite.WithShadowTimeout(0),
		"concurrency":  dualwrite.WithShadowConcurrency(0),
		"sample":       dualwrite.WithShadowSampleRate(1.5),
		"nan sample":   dualwrite.WithShadowSampleRate(nanValue()),
		"nil observer": dualwrite.WithObserver(nil),
		"wrong type":   dualwrite.WithComparator(dualwrite.EqualFunc(func(a, b string) bool { return a == b })),
		"repair queue": dualwrite.WithRepairQueue(dualwrite.RepairQueueFunc(func(context.Context, dualwrite.Repair) error { return nil })),
		"empty field":  dualwrite.WithSensitiveFields(""),
		"nil option":   nil,
	} {
		_, err := dualwrite.NewReader(flag, read, read, opt)
		assert.Error(t, err, name)
	}
	_, err := dualwrite.NewReader[int, int](flag, nil, read)
	assert.Error(t, err)
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// A write landing between the two reads of one call is not a divergence:
// the recheck reads both again and they agree.
func TestRecheckFiltersConcurrentWriteRaces(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name          string
		recheck       bool
		persistent    bool
		wantMatch     bool
		wantRechecked bool
	}{
		{"race, recheck on", true, false, true, true},
		{"race, recheck off", false, false, false, false},
		{"real divergence, recheck on", true, true, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			flag, _ := flagstest.Flag(t, migration, flags.Shadow)
			rec := &dualwritetest.Recorder{}
			var newReads atomic.Int32
			r, err := dualwrite.NewReader(flag,
				func(context.Context, int) (string, error) { return "Ada Lovelace", nil },
				func(context.Context, int) (string, error) {
					if newReads.Add(1) == 1 || tt.persistent {
						return "Ada King", nil // a version from before (or beside) the old one
					}
					return "Ada Lovelace", nil
				},
				dualwrite.WithObserver(rec), dualwrite.WithRecheck(tt.recheck))
			require.NoError(t, err)
			got, err := r.Read(t.Context(), 1)
			require.NoError(t, err)
			assert.Equal(t, "Ada Lovelace", got)
			r.Wait() // Close would cancel a shadow read still in flight
			require.NoError(t, r.Close())
			cmp := rec.Comparisons()
			require.Len(t, cmp, 1)
			assert.Equal(t, tt.wantMatch, cmp[0].Match)
			assert.Equal(t, tt.wantRechecked, cmp[0].Rechecked)
			if !tt.wantMatch {
				assert.Equal(t, []dualwrite.Diff{{Old: `"Ada Lovelace"`, New: `"Ada King"`}}, cmp[0].Diffs)
			}
		})
	}
}

// A provider that is not ready yet: calls take the old path (off), the
// caller is served, and every fallback is counted.
func TestProviderNotReadyServesOff(t *testing.T) {
	t.Parallel()
	rec := &dualwritetest.Recorder{}
	p := flagstest.NewUnreadyProvider(map[string]flags.Stage{migration: flags.Complete})
	ev, err := flags.NewEvaluator(flagstest.Client(t, p), flags.WithObserver(rec))
	require.NoError(t, err)
	flag, err := ev.Flag(migration)
	require.NoError(t, err)
	ran := &origins{}
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (string, error) { ran.record("old"); return "old", nil },
		func(context.Context, int) (string, error) { ran.record("new"); return "new", nil },
		dualwrite.WithObserver(rec))
	require.NoError(t, err)
	defer r.Close()
	w, err := dualwrite.NewWriter(flag,
		func(context.Context, int) error { ran.record("write old"); return nil },
		func(context.Context, int) error { ran.record("write new"); return nil })
	require.NoError(t, err)

	got, err := r.Read(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, "old", got)
	require.NoError(t, w.Write(t.Context(), 0))
	assert.Equal(t, []string{"old", "write old"}, ran.list())
	fb := rec.Fallbacks()
	require.Len(t, fb, 2)
	for _, f := range fb {
		assert.Equal(t, flags.ProviderNotReady, f.Reason)
		assert.Equal(t, flags.Off, f.Stage)
	}
	assert.Equal(t, uint64(2), ev.Stats().Fallbacks[flags.ProviderNotReady])
}
