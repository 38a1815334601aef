package backfill

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// model is a synthetic foreground: its latency grows with the share of
// time the backfill works (by lat× at full pace) and its throughput falls
// (by tp at full pace), with a few percent of noise.
type model struct {
	base    Foreground
	lat, tp float64
	rng     *rand.Rand
}

func (m model) at(duty float64) Foreground {
	noise := func() float64 { return 1 + 0.03*(2*m.rng.Float64()-1) }
	return Foreground{
		Latency:    time.Duration(float64(m.base.Latency) * (1 + m.lat*duty) * noise()),
		Throughput: m.base.Throughput * (1 - m.tp*duty) * noise(),
		Ops:        1000,
	}
}

// The controller, windows driven by an injected clock against a synthetic
// foreground: it finds a pace that holds the budget (1.5× latency, 90% of
// the throughput) close to the fastest that does, backs off when the load
// rises, and speeds up when it falls.
func TestPacerFindsTheFastestPaceWithinTheBudget(t *testing.T) {
	t.Parallel()
	budget := LatencyBudget{P99: 1.5, Throughput: 0.9, Window: time.Second}
	base := Foreground{Latency: 4 * time.Millisecond, Throughput: 2000, Ops: 2000}
	p := newPacer(budget, base)
	require.InDelta(t, paceStart, p.duty, 1e-9)
	now := time.Unix(0, 0)
	m := model{base: base, rng: rand.New(rand.NewPCG(1, 2))}
	type phase struct {
		duties   []float64
		lat      []float64 // latency ratio
		tp       []float64 // throughput ratio
		overLast int       // windows past a limit in the phase's second half
	}
	run := func(windows int) phase {
		var ph phase
		duty := p.duty
		for i := range windows {
			f := m.at(duty)
			now = now.Add(budget.Window)
			duty, _ = p.update(now, f)
			ph.duties = append(ph.duties, duty)
			lr, tr := float64(f.Latency)/float64(base.Latency), f.Throughput/base.Throughput
			ph.lat, ph.tp = append(ph.lat, lr), append(ph.tp, tr)
			if i >= windows/2 && (lr > 1.5 || tr < 0.9) {
				ph.overLast++
			}
		}
		return ph
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	tail := func(xs []float64) []float64 { return xs[len(xs)/2:] }

	// Latency binds: 1 + 1·d ≤ 1.5 up to d = 0.5 (throughput 1 − 0.1·d
	// would allow all of it).
	m.lat, m.tp = 1, 0.1
	steady := run(80)
	t.Logf("steady: mean duty %.3f, latency %.3f×, throughput %.3f", mean(tail(steady.duties)), mean(tail(steady.lat)), mean(tail(steady.tp)))
	assert.Zero(t, steady.overLast, "no window past the budget once converged")
	assert.InDelta(t, 0.4, mean(tail(steady.duties)), 0.1, "near the fastest pace the budget allows (0.5), below its set point's margin")
	assert.Less(t, mean(tail(steady.lat)), 1.5)

	// The load rises: the same pace costs twice as much latency; the
	// fastest within budget is 0.25.
	m.lat = 2
	busy := run(60)
	t.Logf("busy: mean duty %.3f, latency %.3f×", mean(tail(busy.duties)), mean(tail(busy.lat)))
	assert.Less(t, busy.duties[2], steady.duties[len(steady.duties)-1], "backs off within two windows")
	assert.Zero(t, busy.overLast)
	assert.InDelta(t, 0.2, mean(tail(busy.duties)), 0.06)

	// Throughput binds instead: 1 − 0.4·d ≥ 0.9 up to d = 0.25.
	m.lat, m.tp = 0.2, 0.4
	tpBound := run(60)
	t.Logf("throughput-bound: mean duty %.3f, throughput %.3f", mean(tail(tpBound.duties)), mean(tail(tpBound.tp)))
	assert.Zero(t, tpBound.overLast)
	assert.InDelta(t, 0.2, mean(tail(tpBound.duties)), 0.06)

	// The load falls away: every pace is within budget; it speeds up to
	// full pace, a twentieth a window.
	m.lat, m.tp = 0.1, 0.02
	idle := run(30)
	assert.InDelta(t, 1.0, idle.duties[len(idle.duties)-1], 1e-9, "full pace")
	assert.Greater(t, mean(tail(idle.duties)), 0.9)
}

// A window past a limit halves the pace and holds it for one window; one
// with no foreground keeps it; a baseline with no foreground runs at
// full pace.
func TestPacerBacksOffAndHolds(t *testing.T) {
	t.Parallel()
	budget := LatencyBudget{P99: 1.5, Window: time.Second}
	base := Foreground{Latency: 10 * time.Millisecond, Ops: 100}
	p := newPacer(budget, base)
	p.duty = 0.8
	now := time.Unix(0, 0)
	d, shrink := p.update(now, Foreground{Latency: 16 * time.Millisecond, Ops: 10})
	assert.InDelta(t, 0.4, d, 1e-9)
	assert.True(t, shrink)
	assert.Contains(t, p.describe(), "latency 1.60×")
	d, shrink = p.update(now.Add(500*time.Millisecond), Foreground{Latency: 10 * time.Millisecond, Ops: 10})
	assert.InDelta(t, 0.4, d, 1e-9, "held one window after the back-off")
	assert.False(t, shrink)
	d, _ = p.update(now.Add(time.Second), Foreground{Latency: 10 * time.Millisecond, Ops: 10})
	assert.InDelta(t, 0.45, d, 1e-9)
	d, _ = p.update(now.Add(2*time.Second), Foreground{Latency: 14 * time.Millisecond, Ops: 10})
	assert.InDelta(t, 0.375, d, 1e-9, "past the set point (1.35×): eased off by a sixth")
	d, _ = p.update(now.Add(3*time.Second), Foreground{})
	assert.InDelta(t, 0.375, d, 1e-9, "no foreground: kept")
	for i := range 20 {
		d, _ = p.update(now.Add(time.Duration(4+i)*time.Second), Foreground{Latency: time.Second, Ops: 1})
	}
	assert.InDelta(t, paceMin, d, 1e-9, "never below the floor")

	idle := newPacer(budget, Foreground{})
	assert.Contains(t, idle.describe(), "no foreground during the baseline")
	d, _ = idle.update(now, Foreground{Latency: time.Hour, Ops: 1})
	assert.InDelta(t, 1.0, d, 1e-9, "with no baseline, a reading is not judged")
	assert.False(t, idle.referenceDue())
}

// The recorder's 99th percentile is within a tenth of the truth, its
// throughput is over the time between reads by its clock, and each read
// starts a new window.
func TestForegroundRecorder(t *testing.T) {
	t.Parallel()
	now := time.Unix(100, 0)
	r := NewForegroundRecorder(func() time.Time { return now })
	f, err := r.Read(t.Context())
	require.NoError(t, err)
	assert.Zero(t, f)
	for i := range 1000 {
		d := time.Millisecond
		if i%50 == 0 {
			d = 50 * time.Millisecond // the slowest 2%
		}
		if i == 0 {
			d = 3 * time.Second
		}
		r.Observe(d)
	}
	now = now.Add(2 * time.Second)
	f, err = r.Read(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(1000), f.Ops)
	assert.InDelta(t, 500, f.Throughput, 1e-9)
	assert.InDelta(t, float64(50*time.Millisecond), float64(f.Latency), float64(5*time.Millisecond))
	now = now.Add(time.Second)
	f, _ = r.Read(t.Context())
	assert.Zero(t, f.Ops)
	assert.Zero(t, f.Latency)
	r.Observe(-time.Second)
	r.Observe(time.Duration(1 << 62))
	f, _ = r.Read(t.Context())
	assert.Equal(t, int64(2), f.Ops)
}

// Until a window first comes out past the set point, a foreground near
// its baseline doubles the pace (slow start); after one has, the pace
// grows by twentieths.
func TestPacerSlowStart(t *testing.T) {
	t.Parallel()
	base := Foreground{Latency: 10 * time.Millisecond, Throughput: 100, Ops: 100}
	p := newPacer(LatencyBudget{P99: 1.5, Throughput: 0.9, Window: time.Second}, base)
	now := time.Unix(0, 0)
	var duties []float64
	for i := range 4 {
		d, _ := p.update(now.Add(time.Duration(i)*time.Second), base)
		duties = append(duties, d)
	}
	assert.InDeltaSlice(t, []float64{0.2, 0.4, 0.8, 1}, duties, 1e-9)
	p = newPacer(LatencyBudget{P99: 1.5, Window: time.Second}, base)
	d, _ := p.update(now, Foreground{Latency: 14 * time.Millisecond, Ops: 1}) // past the set point
	assert.InDelta(t, paceStart*5/6, d, 1e-9)
	d, _ = p.update(now.Add(time.Second), base)
	assert.InDelta(t, paceStart*5/6+paceStep, d, 1e-9, "slow start is over")
	p = newPacer(LatencyBudget{P99: 1.5, Window: time.Second}, base)
	d, _ = p.update(now, Foreground{Latency: 12 * time.Millisecond, Ops: 1}) // within, but past half the set point
	assert.InDelta(t, paceStart+paceStep*0.6, d, 1e-9)
}

// A boundary found while the last chunk ran is taken only from the same
// frontier, and only within a tenth of the size asked either side: a
// size cut since is not undone by it, and one grown since is walked (a
// smaller chunk taken for it kept the size from ever being walked).
// Under a rate, never over the size asked: the limiter let that many go.
func TestBoundaryGuessFits(t *testing.T) {
	t.Parallel()
	g := &boundaryGuess{lo: Key{"3", "a"}, hi: Key{"9", "z"}, size: 1000}
	fits := func(lo Key, size int) bool { return g.fits(lo, size, size+size/10) }
	assert.True(t, fits(Key{"3", "a"}, 1000))
	assert.True(t, fits(Key{"3", "a"}, 910), "a tenth over")
	assert.True(t, fits(Key{"3", "a"}, 1100), "a tenth under")
	assert.False(t, fits(Key{"3", "a"}, 5000), "the size grew: the claim walks it")
	assert.False(t, fits(Key{"3", "a"}, 500), "the size was cut")
	assert.False(t, fits(Key{"3", "b"}, 1000), "another worker moved the frontier")
	assert.False(t, fits(nil, 1000))
	assert.False(t, g.fits(Key{"3", "a"}, 910, 910), "over what a rate let go")
	assert.True(t, g.fits(Key{"3", "a"}, 1100, 1100), "under it")
	var none *boundaryGuess
	assert.False(t, none.fits(Key{"3", "a"}, 1000, 1100))
	var l *lookahead
	guesses, short := l.result()
	assert.Nil(t, guesses)
	assert.Nil(t, short)
	assert.False(t, short.tailIn(Key{"3", "a"}, 1000))
	l.wait()
}

// The foreground's own load moves while the backfill runs (here it
// rises by a third, then falls away), and the budget is on what the
// backfill costs it, not on what it costs itself: every eighth window
// the backfill rests, and that window's reading is the reference the
// next are judged against. Judged against the first baseline alone, the
// risen load reads as the backfill's (throughput at 80% of it whatever
// the pace) and the pace falls to its floor; against references it
// stays near the fastest the budget allows, and each working window
// holds the budget against the foreground as it is without the backfill.
func TestPacerFollowsTheForegroundsOwnLoad(t *testing.T) {
	t.Parallel()
	budget := LatencyBudget{P99: 1.5, Throughput: 0.9, Window: time.Second}
	base := Foreground{Latency: 4 * time.Millisecond, Throughput: 2000, Ops: 2000}
	p := newPacer(budget, base)
	m := model{base: base, rng: rand.New(rand.NewPCG(3, 4)), lat: 1, tp: 0.1}
	now := time.Unix(0, 0)
	var references int
	run := func(windows int, load float64) (duties []float64, over int) {
		m.base = Foreground{Latency: time.Duration(float64(base.Latency) * load), Throughput: base.Throughput / load, Ops: 2000}
		duty := p.duty
		for i := range windows {
			now = now.Add(budget.Window)
			if p.referenceDue() {
				p.reference(m.at(0))
				references++
				continue
			}
			f := m.at(duty)
			duty, _ = p.update(now, f)
			duties = append(duties, duty)
			if i >= windows/2 && (float64(f.Latency)/float64(m.base.Latency) > 1.5 || f.Throughput/m.base.Throughput < 0.9) {
				over++
			}
		}
		return duties, over
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs[len(xs)/2:] {
			s += x
		}
		return s / float64(len(xs)-len(xs)/2)
	}
	steady, over := run(100, 1)
	assert.Zero(t, over)
	assert.InDelta(t, 0.35, mean(steady), 0.1, "near the set point's pace (0.35; the fastest within budget is 0.5)")
	risen, over := run(100, 4.0/3)
	t.Logf("steady %.3f, risen %.3f", mean(steady), mean(risen))
	assert.Zero(t, over, "within budget against the foreground as it is")
	assert.Greater(t, mean(risen), 0.2, "the foreground's own load is not blamed on the backfill (against the first baseline: 0.01)")
	fallen, over := run(100, 0.8)
	assert.Zero(t, over)
	assert.Greater(t, mean(fallen), 0.2)
	assert.Greater(t, references, 30, "a reference every eighth window")
}

// A reference with no foreground sends the backfill to full pace; two
// readings in a row that see a foreground then make the next window a
// reference (one alone does not), and the reference with one starts the
// pace again where a budget starts.
func TestPacerReferenceWithoutAForeground(t *testing.T) {
	t.Parallel()
	p := newPacer(LatencyBudget{P99: 1.5, Window: time.Second}, Foreground{Latency: time.Millisecond, Ops: 10})
	p.duty = 0.3
	p.reference(Foreground{})
	assert.InDelta(t, 1.0, p.duty, 1e-9)
	assert.Contains(t, p.describe(), "no foreground at the reference")
	busy := Foreground{Latency: time.Millisecond, Throughput: 100, Ops: 100}
	for range 10 * referenceEvery {
		p.update(time.Unix(0, 0), Foreground{})
		assert.False(t, p.referenceDue(), "no foreground, no reference")
	}
	p.update(time.Unix(0, 0), busy)
	assert.False(t, p.referenceDue(), "one reading is not a foreground")
	p.update(time.Unix(0, 0), Foreground{})
	p.update(time.Unix(0, 0), busy)
	assert.False(t, p.referenceDue(), "nor two apart")
	duty, _ := p.update(time.Unix(0, 0), busy)
	assert.InDelta(t, 1.0, duty, 1e-9, "full pace until the reference")
	assert.True(t, p.referenceDue())
	assert.Contains(t, p.describe(), "a foreground is arriving")
	p.reference(busy)
	assert.InDelta(t, paceStart, p.duty, 1e-9)
	assert.Contains(t, p.describe(), "a foreground arrived")
	assert.False(t, p.referenceDue())
	// A signal that failed halved the pace; a reading with no foreground
	// while the reference had none restores it.
	p.reference(Foreground{})
	p.duty = 0.25
	duty, _ = p.update(time.Unix(0, 0), Foreground{})
	assert.InDelta(t, 1.0, duty, 1e-9)
}

// A foreground that loses a quarter of its throughput by its own doing
// (a vacuum starts, say) reads as past the budget against the reference
// taken before. The window after one past a limit is a reference (from
// the second after the last on), so the pace is judged against the
// foreground as it is now and does not sink to its floor (judged against
// the old reference until the eighth window, it halves every other
// window down to 0.01).
func TestPacerTakesAReferenceWhenOverBudget(t *testing.T) {
	t.Parallel()
	budget := LatencyBudget{Throughput: 0.9, Window: time.Second}
	base := Foreground{Throughput: 2000, Ops: 2000}
	p := newPacer(budget, base)
	m := model{base: base, rng: rand.New(rand.NewPCG(5, 6)), tp: 0.4}
	now := time.Unix(0, 0)
	duty := p.duty
	step := func() (reference bool) {
		now = now.Add(budget.Window)
		if p.referenceDue() {
			p.reference(m.at(0))
			duty = p.duty
			return true
		}
		duty, _ = p.update(now, m.at(duty))
		return false
	}
	for i := 0; i < 40 || duty < 0.12 || p.windows < 2; i++ {
		require.Less(t, i, 400, "the pace never came near the set point (0.175)")
		step()
	}
	m.base = Foreground{Throughput: 1500, Ops: 1500}
	least, windows := duty, 0
	for !step() {
		windows++
		least = min(least, duty)
	}
	assert.LessOrEqual(t, windows, 2, "a reference in the window after the first past the limit")
	sum := 0.0
	for range 40 {
		step()
		least, sum = min(least, duty), sum+duty
	}
	assert.Greater(t, least, 0.05, "the pace never sank towards its floor")
	assert.Greater(t, sum/40, 0.1, "and stayed near the set point")
}

// Whether a reading shows a foreground at all is the signal's to tell
// (the statistics count the backfill's own, late): at a reference and
// while there was none, a reading it says is no foreground is none. A
// reading judged against a reference with one is judged whole; its
// throughput only over enough operations to tell a loss from noise.
func TestPacerAsksTheSignalWhetherAForegroundRuns(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	budget := LatencyBudget{Throughput: 0.9, Window: time.Second}
	p := newPacer(budget, Foreground{})
	p.busy = func(f Foreground) bool { return f.Throughput > 100 }
	light := Foreground{Throughput: 50, Ops: 100}
	for range 5 {
		p.update(now, light)
	}
	assert.False(t, p.referenceDue(), "what the signal says is no foreground does not arrive")
	p.reference(light)
	assert.InDelta(t, 1.0, p.duty, 1e-9, "nor is it one at a reference")
	heavy := Foreground{Throughput: 1000, Ops: 2000}
	p.update(now, heavy)
	p.update(now, heavy)
	require.True(t, p.referenceDue())
	p.reference(heavy)
	assert.InDelta(t, paceStart, p.duty, 1e-9)
	d, _ := p.update(now, Foreground{Throughput: 50, Ops: 100})
	assert.Contains(t, p.describe(), "throughput 5% of 1000/s", "judged whole, however small")
	assert.InDelta(t, paceStart*2, d, 1e-9, "but a window of 100 operations is too few to judge its throughput by")
	d, _ = p.update(now, Foreground{Throughput: 500, Ops: 1000})
	assert.InDelta(t, paceStart, d, 1e-9, "one of 1000 at half the throughput is past the limit: halved")
}

// A reference read while the foreground was in a dip of its own (here at
// 0.76 of its throughput and 2.8× its latency, as a checkpoint does)
// makes every reading after the dip look better than the reference. The
// pace must not climb on that false headroom: a reading better than the
// reference by more than the budget lets one be worse holds the pace,
// and the window after the second is a reference. Against the stale one
// until the eighth window, slow start doubles the pace to full, and the
// foreground, judged against itself, loses 30% of its throughput and
// doubles its latency.
func TestPacerRetakesAReferenceReadInADip(t *testing.T) {
	t.Parallel()
	budget := LatencyBudget{P99: 1.5, Throughput: 0.9, Window: time.Second}
	truth := Foreground{Latency: 500 * time.Microsecond, Throughput: 16500, Ops: 16500}
	dip := Foreground{Latency: 1400 * time.Microsecond, Throughput: 12500, Ops: 12500}
	p := newPacer(budget, truth)
	p.reference(dip)
	m := model{base: truth, rng: rand.New(rand.NewPCG(7, 8)), lat: 1, tp: 0.3}
	now := time.Unix(0, 0)
	duty, windows := p.duty, 0
	for !p.referenceDue() {
		require.Less(t, windows, referenceEvery, "no reference before the eighth window")
		now = now.Add(budget.Window)
		duty, _ = p.update(now, m.at(duty))
		windows++
		assert.InDelta(t, paceStart, duty, 1e-9, "window %d: the pace held (%s)", windows, p.describe())
	}
	assert.Equal(t, overReference, windows, "a reference as soon as one after a reference may be")
	assert.Contains(t, p.describe(), "better than the reference")
	p.reference(m.at(0))
	assert.InDelta(t, paceStart, p.duty, 1e-9)
	// Against the foreground as it is, the pace finds its way again and
	// holds the budget.
	over := 0
	for i := range 60 {
		now = now.Add(budget.Window)
		if p.referenceDue() {
			p.reference(m.at(0))
			duty = p.duty
			continue
		}
		f := m.at(duty)
		duty, _ = p.update(now, f)
		if i >= 30 && (float64(f.Latency)/float64(truth.Latency) > 1.5 || f.Throughput/truth.Throughput < 0.9) {
			over++
		}
	}
	assert.Zero(t, over, "no window past the budget once converged")
	assert.Greater(t, duty, 0.1, "and not held at its start: %s", p.describe())

	// A reading better only by noise, or by less than the budget lets one
	// be worse, is judged as before.
	q := newPacer(budget, truth)
	d, _ := q.update(now, Foreground{Latency: 400 * time.Microsecond, Throughput: 17500, Ops: 17500})
	assert.InDelta(t, 2*paceStart, d, 1e-9, "slow start goes on: %s", q.describe())
	assert.False(t, q.staleLast)
	// Throughput over too few operations to judge is not a stale reference.
	d, _ = q.update(now, Foreground{Latency: 450 * time.Microsecond, Throughput: 30000, Ops: 300})
	assert.InDelta(t, 4*paceStart, d, 1e-9, "%s", q.describe())
	// Either limit's side tells alone.
	for _, c := range []struct {
		budget LatencyBudget
		f      Foreground
	}{
		{LatencyBudget{Throughput: 0.9, Window: time.Second}, Foreground{Latency: truth.Latency, Throughput: 1.15 * truth.Throughput, Ops: 19000}},
		{LatencyBudget{P99: 1.5, Window: time.Second}, Foreground{Latency: truth.Latency / 2, Throughput: truth.Throughput, Ops: 16500}},
	} {
		r := newPacer(c.budget, truth)
		r.update(now, c.f)
		d, _ := r.update(now, c.f)
		assert.InDelta(t, paceStart, d, 1e-9, "%+v: %s", c.budget, r.describe())
		assert.True(t, r.referenceDue(), "%+v", c.budget)
	}
}
