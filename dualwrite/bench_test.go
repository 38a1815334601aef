package dualwrite_test

import (
	"context"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature/isolated"
	"github.com/open-feature/go-sdk/openfeature/memprovider"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
)

// benchFlag is the stage flag of migration at stage s, served by
// OpenFeature's in-memory provider: the flag evaluation a real service pays.
func benchFlag(b *testing.B, s flags.Stage) *flags.Flag {
	b.Helper()
	api := isolated.NewAPI()
	b.Cleanup(func() { _ = api.Shutdown(context.Background()) })
	err := api.SetProviderAndWait(context.Background(), memprovider.NewInMemoryProvider(map[string]memprovider.InMemoryFlag{
		migration: {Key: migration, State: memprovider.Enabled, DefaultVariant: s.String(), Variants: map[string]any{s.String(): s.String()}},
	}))
	if err != nil {
		b.Fatal(err)
	}
	ev, err := flags.NewEvaluator(api.NewClient())
	if err != nil {
		b.Fatal(err)
	}
	f, err := ev.Flag(migration)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// measure runs fn n times and returns its cost per call.
func measure(n int, fn func()) (ns, allocs float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range n {
		fn()
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return float64(elapsed.Nanoseconds()) / float64(n), float64(after.Mallocs-before.Mallocs) / float64(n)
}

var sink user

// counter is a cheap observer, as a metrics adapter would be: the
// benchmark pays for timing every call.
type counter struct {
	dualwrite.NopObserver
	calls atomic.Int64
	nanos atomic.Int64
}

func (c *counter) ObserveCall(_ context.Context, call dualwrite.Call) {
	c.calls.Add(1)
	c.nanos.Add(int64(call.Duration))
}

// fixedStage is a stage source that costs next to nothing, so the
// adapter's own overhead is not lost in the flag evaluation's noise.
type fixedStage flags.Stage

func (fixedStage) Migration() string                   { return migration }
func (s fixedStage) Stage(context.Context) flags.Stage { return flags.Stage(s) }

// BenchmarkAdapterOverhead measures Read and Write at the single-origin
// stages against their baseline in the same run: the flag evaluation plus a
// direct call of the origin. Reported: overhead-ns/op and extra-allocs/op
// beyond that baseline (target ≤ 200 ns, ≤ 1 alloc), and the ratio of the
// adapter's cost to the baseline's. "openfeature" evaluates through
// OpenFeature's in-memory provider, as a service would; "fixed" uses a
// constant stage source, which isolates the adapter's own cost from the
// evaluation's noise. Every adapter times its calls for an observer.
func BenchmarkAdapterOverhead(b *testing.B) {
	ctx := context.Background()
	ada := user{ID: 1, GivenName: "Ada", FamilyName: "Lovelace"}
	read := func(context.Context, int) (user, error) { return ada, nil }
	write := func(context.Context, user) error { return nil }
	for _, stage := range []flags.Stage{flags.Off, flags.Complete} {
		sources := []struct {
			name   string
			source dualwrite.StageSource
		}{{"openfeature", benchFlag(b, stage)}, {"fixed", fixedStage(stage)}}
		for _, src := range sources {
			obs := &counter{}
			r, err := dualwrite.NewReader(src.source, read, read, dualwrite.WithObserver(obs))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			w, err := dualwrite.NewWriter(src.source, write, write, dualwrite.WithObserver(obs))
			if err != nil {
				b.Fatal(err)
			}
			b.Run("read/"+stage.String()+"/"+src.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					sink, _ = r.Read(ctx, 1)
				}
				b.StopTimer()
				report(b,
					func() { _ = src.source.Stage(ctx); sink, _ = read(ctx, 1) },
					func() { sink, _ = r.Read(ctx, 1) })
			})
			b.Run("write/"+stage.String()+"/"+src.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_ = w.Write(ctx, ada)
				}
				b.StopTimer()
				report(b,
					func() { _ = src.source.Stage(ctx); _ = write(ctx, ada) },
					func() { _ = w.Write(ctx, ada) })
			})
		}
	}
}

// report times the adapter and its baseline alternately in the same run.
func report(b *testing.B, baseline, adapter func()) {
	const n, rounds = 20000, 15
	var baseNs, adNs, baseAllocs, adAllocs []float64
	for range rounds {
		ns, al := measure(n, baseline)
		baseNs, baseAllocs = append(baseNs, ns), append(baseAllocs, al)
		ns, al = measure(n, adapter)
		adNs, adAllocs = append(adNs, ns), append(adAllocs, al)
	}
	base, ad := median(baseNs), median(adNs)
	b.ReportMetric(base, "baseline-ns/op")
	b.ReportMetric(ad-base, "overhead-ns/op")
	b.ReportMetric(ad/base, "x-baseline")
	b.ReportMetric(median(adAllocs)-median(baseAllocs), "extra-allocs/op")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkShadowLatency reads at stage shadow with a shadow origin 10×
// slower than the authoritative one (simulated I/O: 1 ms against 10 ms) and
// compares the median latency the caller sees with stage off, measured in
// the same run. Target: median-ratio ≤ 1.10.
func BenchmarkShadowLatency(b *testing.B) {
	ctx := context.Background()
	const authLatency = time.Millisecond
	fast := func(context.Context, int) (user, error) { time.Sleep(authLatency); return user{ID: 1}, nil }
	slow := func(ctx context.Context, _ int) (user, error) {
		select {
		case <-time.After(10 * authLatency):
		case <-ctx.Done():
		}
		return user{ID: 1}, nil
	}
	off, err := dualwrite.NewReader(benchFlag(b, flags.Off), fast, slow)
	if err != nil {
		b.Fatal(err)
	}
	defer off.Close()
	shadow, err := dualwrite.NewReader(benchFlag(b, flags.Shadow), fast, slow)
	if err != nil {
		b.Fatal(err)
	}
	defer shadow.Close()

	var offLat, shadowLat []float64
	timed := func(r *dualwrite.Reader[int, user]) float64 {
		start := time.Now()
		sink, _ = r.Read(ctx, 1)
		return float64(time.Since(start).Nanoseconds())
	}
	for b.Loop() {
		offLat = append(offLat, timed(off))
		shadowLat = append(shadowLat, timed(shadow))
	}
	b.StopTimer()
	shadow.Wait()
	b.ReportMetric(median(offLat)/1e3, "off-median-µs")
	b.ReportMetric(median(shadowLat)/1e3, "shadow-median-µs")
	b.ReportMetric(median(shadowLat)/median(offLat), "median-ratio")
}
