package dualwrite

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for shadow reads.
const (
	DefaultShadowTimeout     = time.Second
	DefaultShadowConcurrency = 32
)

// Option configures a [Reader], [Writer] or [TxWriter]. Options that do not
// apply to what is being built are rejected by its constructor.
type Option func(*config) error

type config struct {
	observer          Observer
	shadowTimeout     time.Duration
	shadowConcurrency int
	sampleRate        float64
	comparator        any // Comparator[T] of the reader's T
	sensitive         []string
	recheck           bool
	repairs           RepairQueue
	now               func() time.Time
	sinceStart        func() time.Duration // monotonic; cheaper than two time.Now calls
	timed             bool                 // someone observes durations

	readerOnly []string // names of options that only a Reader takes
	writerOnly []string // names of options that only a Writer takes
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		observer:          NopObserver{},
		shadowTimeout:     DefaultShadowTimeout,
		shadowConcurrency: DefaultShadowConcurrency,
		sampleRate:        1,
		recheck:           true,
	}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("option is nil")
		}
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	if c.now == nil {
		start := time.Now()
		c.now = time.Now
		c.sinceStart = func() time.Duration { return time.Since(start) }
	} else {
		start := c.now()
		c.sinceStart = func() time.Duration { return c.now().Sub(start) }
	}
	_, nop := c.observer.(NopObserver)
	c.timed = !nop
	return c, nil
}

// clock reads the time for measuring a call's duration; it costs nothing
// when no observer is set.
func (c *config) clock() time.Duration {
	if !c.timed {
		return 0
	}
	return c.sinceStart()
}

func (c *config) forbid(names []string, what string) error {
	if len(names) > 0 {
		return fmt.Errorf("%s does not apply to a %s", names[0], what)
	}
	return nil
}

// WithObserver sends every call, comparison and dropped shadow read to o.
func WithObserver(o Observer) Option {
	return func(c *config) error {
		if o == nil {
			return errors.New("WithObserver: observer is nil")
		}
		c.observer = o
		return nil
	}
}

// WithClock sets the clock used to time calls (for tests).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("WithClock: clock is nil")
		}
		c.now = now
		return nil
	}
}

// WithShadowTimeout bounds each shadow read (default [DefaultShadowTimeout]).
// A shadow read still running then is abandoned and reported as a failed
// comparison ([FaultTimeout]).
func WithShadowTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithShadowTimeout: %v is not positive", d)
		}
		c.shadowTimeout = d
		c.readerOnly = append(c.readerOnly, "WithShadowTimeout")
		return nil
	}
}

// WithShadowConcurrency bounds the shadow reads in flight at once (default
// [DefaultShadowConcurrency]); a shadow read beyond it is dropped and
// reported ([DropFull]), never queued. Size it to the shadow read's latency
// times the rate of shadowed calls: at 32 and a 10 ms read, shadowed calls
// beyond 3,200 a second are dropped.
func WithShadowConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithShadowConcurrency: %d is less than 1", n)
		}
		c.shadowConcurrency = n
		c.readerOnly = append(c.readerOnly, "WithShadowConcurrency")
		return nil
	}
}

// WithShadowSampleRate runs the shadow read on a fraction of calls, from 0
// (never) to 1 (always, the default). A call sampled out is not a drop and
// is not reported.
func WithShadowSampleRate(rate float64) Option {
	return func(c *config) error {
		if !(rate >= 0 && rate <= 1) {
			return fmt.Errorf("WithShadowSampleRate: %v is outside [0, 1]", rate)
		}
		c.sampleRate = rate
		c.readerOnly = append(c.readerOnly, "WithShadowSampleRate")
		return nil
	}
}

// WithComparator replaces the default deep comparison. T must be the
// reader's result type.
func WithComparator[T any](cmp Comparator[T]) Option {
	return func(c *config) error {
		if cmp == nil {
			return errors.New("WithComparator: comparator is nil")
		}
		c.comparator = cmp
		c.readerOnly = append(c.readerOnly, "WithComparator")
		return nil
	}
}

// WithRecheck sets whether a shadow read whose value differs from the
// authoritative one is confirmed by reading both origins again, back to back,
// before it is reported as a mismatch (default true). Under concurrent
// writes, two reads made a moment apart can see two versions of a row; the
// recheck keeps such races from counting as divergences. Only a difference
// between two successful reads is rechecked: a read that failed is reported
// as a failure at once, and a recheck whose own read fails reports a failure
// too. Read functions must be safe to call more than once.
func WithRecheck(on bool) Option {
	return func(c *config) error {
		c.recheck = on
		c.readerOnly = append(c.readerOnly, "WithRecheck")
		return nil
	}
}

// WithSensitiveFields names fields whose values never appear in a report:
// a Go field name matches that field anywhere in the value ("Email"), a
// dotted path matches one place ("Contact.Email"). Fields tagged
// `schemashift:"sensitive"` are always redacted.
func WithSensitiveFields(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if n == "" {
				return errors.New("WithSensitiveFields: empty field name")
			}
		}
		c.sensitive = append(c.sensitive, names...)
		c.readerOnly = append(c.readerOnly, "WithSensitiveFields")
		return nil
	}
}

// WithRepairQueue sets what a cross-store [Writer] does when the write to
// the non-authoritative origin fails: record it in q for repair and succeed,
// instead of failing the call (the default). If recording fails too, the
// call fails.
func WithRepairQueue(q RepairQueue) Option {
	return func(c *config) error {
		if q == nil {
			return errors.New("WithRepairQueue: queue is nil")
		}
		c.repairs = q
		c.writerOnly = append(c.writerOnly, "WithRepairQueue")
		return nil
	}
}
