package flags

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/open-feature/go-sdk/openfeature"
)

// Client is the part of an *openfeature.Client the evaluator uses. Pass a
// client made from your own API instance (openfeature/isolated.NewAPI, or
// the global one if the application already uses it); schemashift never
// touches OpenFeature's global state.
type Client interface {
	StringValueDetails(ctx context.Context, flag string, defaultValue string, evalCtx openfeature.EvaluationContext, options ...openfeature.Option) (openfeature.StringEvaluationDetails, error)
}

var _ Client = (*openfeature.Client)(nil)

// FallbackReason says why an evaluation did not yield a stage from the
// provider.
type FallbackReason uint8

// Why an evaluation fell back.
const (
	// ProviderNotReady: the provider has not finished initialising.
	ProviderNotReady FallbackReason = iota
	// FlagNotFound: the provider knows no flag by that key.
	FlagNotFound
	// ProviderError: any other provider or SDK error (including a fatal or
	// errored provider, a type mismatch or a failing hook).
	ProviderError
	// UnknownVariant: the provider returned a string that names no stage.
	UnknownVariant
	numFallbackReasons
)

func (r FallbackReason) String() string {
	switch r {
	case ProviderNotReady:
		return "provider_not_ready"
	case FlagNotFound:
		return "flag_not_found"
	case ProviderError:
		return "provider_error"
	case UnknownVariant:
		return "unknown_variant"
	}
	return fmt.Sprintf("FallbackReason(%d)", uint8(r))
}

// Fallback describes one evaluation that did not yield a stage from the
// provider, and the stage used instead.
type Fallback struct {
	Migration string
	FlagKey   string
	// Stage is the stage used instead.
	Stage  Stage
	Reason FallbackReason
	// Err is the provider's error, or the parse error of an unknown variant.
	Err error
}

// Observer receives every fallback. Implementations must be safe for
// concurrent use and must not block: they run on the caller's path.
type Observer interface {
	ObserveFallback(ctx context.Context, f Fallback)
}

// Stats counts evaluations and fallbacks since an [Evaluator] was made.
type Stats struct {
	Evaluations uint64
	Fallbacks   map[FallbackReason]uint64
}

// TotalFallbacks sums Fallbacks over every reason.
func (s Stats) TotalFallbacks() uint64 {
	var n uint64
	for _, c := range s.Fallbacks {
		n += c
	}
	return n
}

// Option configures an [Evaluator].
type Option func(*Evaluator) error

// WithFallback makes every failed evaluation use stage s, instead of the
// default rule (the last stage seen for that migration in this process,
// else [Off]).
func WithFallback(s Stage) Option {
	return func(e *Evaluator) error {
		if !s.Valid() {
			return fmt.Errorf("fallback stage %d: %w", uint8(s), ErrUnknownStage)
		}
		e.fallback, e.fixedFallback = s, true
		return nil
	}
}

// WithFlagKeyPrefix sets a prefix that turns a migration name into its flag
// key: the flag of migration "users_split_name" with prefix "schemashift."
// is "schemashift.users_split_name". The default is no prefix.
func WithFlagKeyPrefix(prefix string) Option {
	return func(e *Evaluator) error {
		e.prefix = prefix
		return nil
	}
}

// WithObserver reports every fallback to o.
func WithObserver(o Observer) Option {
	return func(e *Evaluator) error {
		if o == nil {
			return errors.New("observer is nil")
		}
		e.observer = o
		return nil
	}
}

// WithEvaluationContext adds an evaluation context computed from each call's
// ctx (a tenant or user id the application keeps in ctx, say). OpenFeature's
// own transaction context (openfeature.WithTransactionContext) is always
// honoured; this is for applications that keep request identity elsewhere.
func WithEvaluationContext(fn func(ctx context.Context) openfeature.EvaluationContext) Option {
	return func(e *Evaluator) error {
		if fn == nil {
			return errors.New("evaluation context func is nil")
		}
		e.contextOf = fn
		return nil
	}
}

// Evaluator evaluates the stage of migrations through an OpenFeature client
// and applies the fallback rules. It is safe for concurrent use and holds
// nothing that needs closing.
type Evaluator struct {
	client        Client
	prefix        string
	fallback      Stage
	fixedFallback bool
	observer      Observer
	contextOf     func(context.Context) openfeature.EvaluationContext

	mu    sync.Mutex
	flags map[string]*Flag

	evaluations atomic.Uint64
	fallbacks   [numFallbackReasons]atomic.Uint64
}

// NewEvaluator returns an evaluator over client.
func NewEvaluator(client Client, opts ...Option) (*Evaluator, error) {
	if client == nil {
		return nil, errors.New("new evaluator: client is nil")
	}
	e := &Evaluator{client: client, flags: make(map[string]*Flag)}
	for _, opt := range opts {
		if err := opt(e); err != nil {
			return nil, fmt.Errorf("new evaluator: %w", err)
		}
	}
	return e, nil
}

// Flag returns the flag of one migration. The same *Flag is returned for the
// same name; hold on to it, since evaluating through it costs no lookup.
func (e *Evaluator) Flag(migration string) (*Flag, error) {
	if migration == "" {
		return nil, errors.New("flag: migration name is empty")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.flags[migration]; ok {
		return f, nil
	}
	f := &Flag{evaluator: e, migration: migration, key: e.prefix + migration}
	f.lastGood.Store(noStage)
	e.flags[migration] = f
	return f, nil
}

// Stage evaluates the stage of a migration; see [Flag.Stage].
func (e *Evaluator) Stage(ctx context.Context, migration string) (Stage, error) {
	f, err := e.Flag(migration)
	if err != nil {
		return Off, err
	}
	return f.Stage(ctx), nil
}

// Stats returns the counts so far.
func (e *Evaluator) Stats() Stats {
	s := Stats{Evaluations: e.evaluations.Load(), Fallbacks: make(map[FallbackReason]uint64, numFallbackReasons)}
	for r := range numFallbackReasons {
		s.Fallbacks[r] = e.fallbacks[r].Load()
	}
	return s
}

const noStage = -1

// Flag is the stage flag of one migration. It is safe for concurrent use.
type Flag struct {
	evaluator *Evaluator
	migration string
	key       string
	lastGood  atomic.Int32
}

// Migration returns the migration's name.
func (f *Flag) Migration() string { return f.migration }

// Key returns the flag key evaluated through OpenFeature.
func (f *Flag) Key() string { return f.key }

// Stage evaluates the migration's stage for this call. The OpenFeature
// evaluation context comes from ctx. It never fails: when the provider
// errors, is not ready, or returns a string that names no stage, the
// fallback stage is used and the fallback is counted and reported.
func (f *Flag) Stage(ctx context.Context) Stage {
	s, _ := f.Evaluate(ctx)
	return s
}

// Evaluate is [Flag.Stage] that also returns the fallback, if one happened.
func (f *Flag) Evaluate(ctx context.Context) (Stage, *Fallback) {
	e := f.evaluator
	e.evaluations.Add(1)
	var evalCtx openfeature.EvaluationContext
	if e.contextOf != nil {
		evalCtx = e.contextOf(ctx)
	}
	details, err := e.client.StringValueDetails(ctx, f.key, "", evalCtx)
	if err != nil {
		reason := ProviderError
		switch details.ErrorCode {
		case openfeature.ProviderNotReadyCode:
			reason = ProviderNotReady
		case openfeature.FlagNotFoundCode:
			reason = FlagNotFound
		}
		return f.fallBack(ctx, reason, fmt.Errorf("evaluate flag %q: %w", f.key, err))
	}
	s, err := ParseStage(details.Value)
	if err != nil {
		return f.fallBack(ctx, UnknownVariant, fmt.Errorf("evaluate flag %q: %w", f.key, err))
	}
	if f.lastGood.Load() != int32(s) {
		f.lastGood.Store(int32(s))
	}
	return s, nil
}

// LastGood returns the last stage the provider gave for this migration in
// this process, and false if it never gave one.
func (f *Flag) LastGood() (Stage, bool) {
	v := f.lastGood.Load()
	if v == noStage {
		return Off, false
	}
	return Stage(v), true
}

func (f *Flag) fallBack(ctx context.Context, reason FallbackReason, err error) (Stage, *Fallback) {
	e := f.evaluator
	s := e.fallback
	if !e.fixedFallback {
		s, _ = f.LastGood()
	}
	e.fallbacks[reason].Add(1)
	fb := &Fallback{Migration: f.migration, FlagKey: f.key, Stage: s, Reason: reason, Err: err}
	if e.observer != nil {
		e.observer.ObserveFallback(ctx, *fb)
	}
	return s, fb
}
