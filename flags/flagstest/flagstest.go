// Package flagstest is a fake OpenFeature provider for unit tests of code
// that evaluates schemashift stages. Every test makes its own provider and
// its own OpenFeature API instance, so tests may run with t.Parallel().
//
//	ev, p := flagstest.Evaluator(t, map[string]flags.Stage{"users_split_name": flags.Shadow})
//	flag, _ := ev.Flag("users_split_name")
//	p.Set("users_split_name", flags.Live) // later in the same test
package flagstest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/stringflag"
)

// ErrProviderDown is the error a provider returns for a flag set with
// [Provider.Fail] and a nil error.
var ErrProviderDown = errors.New("flagstest: provider down")

// Provider is an OpenFeature provider whose flags a test sets directly.
// Flag keys are migration names (the evaluator made by [Evaluator] uses no
// key prefix). It is safe for concurrent use.
type Provider struct {
	stringflag.OnlyStrings
	mu       sync.RWMutex
	values   map[string]string
	failures map[string]error
	calls    map[string]int

	ready     chan struct{}
	readyOnce sync.Once
}

var (
	_ openfeature.FeatureProvider          = (*Provider)(nil)
	_ openfeature.ContextAwareStateHandler = (*Provider)(nil)
)

// NewProvider returns a ready provider with the given stages.
func NewProvider(stages map[string]flags.Stage) *Provider {
	p := newProvider(stages)
	p.MarkReady()
	return p
}

// NewUnreadyProvider returns a provider that stays not ready (every
// evaluation fails with PROVIDER_NOT_READY) until [Provider.MarkReady].
func NewUnreadyProvider(stages map[string]flags.Stage) *Provider {
	return newProvider(stages)
}

func newProvider(stages map[string]flags.Stage) *Provider {
	p := &Provider{
		values:   make(map[string]string, len(stages)),
		failures: make(map[string]error),
		calls:    make(map[string]int),
		ready:    make(chan struct{}),
	}
	for m, s := range stages {
		p.values[m] = s.String()
	}
	return p
}

// MarkReady finishes the provider's initialisation.
func (p *Provider) MarkReady() { p.readyOnce.Do(func() { close(p.ready) }) }

// Set makes the migration's flag evaluate to s and clears any failure.
func (p *Provider) Set(migration string, s flags.Stage) { p.SetRaw(migration, s.String()) }

// SetRaw makes the migration's flag return value verbatim, which may name
// no stage.
func (p *Provider) SetRaw(migration, value string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.values[migration] = value
	delete(p.failures, migration)
}

// Fail makes every evaluation of the migration's flag fail with err
// (ErrProviderDown when err is nil), as a flag service that is down would.
func (p *Provider) Fail(migration string, err error) {
	if err == nil {
		err = ErrProviderDown
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures[migration] = err
}

// Unset removes the migration's flag: evaluations fail with FLAG_NOT_FOUND.
func (p *Provider) Unset(migration string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.values, migration)
	delete(p.failures, migration)
}

// Evaluations returns how many times the migration's flag was evaluated.
func (p *Provider) Evaluations(migration string) int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.calls[migration]
}

// Metadata implements openfeature.FeatureProvider.
func (p *Provider) Metadata() openfeature.Metadata {
	return openfeature.Metadata{Name: "schemashift-flagstest"}
}

// InitWithContext implements openfeature.ContextAwareStateHandler: it
// returns once the provider is ready or ctx ends.
func (p *Provider) InitWithContext(ctx context.Context, _ openfeature.EvaluationContext) error {
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ShutdownWithContext implements openfeature.ContextAwareStateHandler.
func (p *Provider) ShutdownWithContext(context.Context) error {
	p.MarkReady() // release a pending InitWithContext
	return nil
}

// Init implements openfeature.StateHandler.
func (p *Provider) Init(ec openfeature.EvaluationContext) error {
	return p.InitWithContext(context.Background(), ec)
}

// Shutdown implements openfeature.StateHandler.
func (p *Provider) Shutdown() { p.MarkReady() }

// StringEvaluation implements openfeature.FeatureProvider.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, _ openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	p.mu.Lock()
	p.calls[flag]++
	value, ok := p.values[flag]
	failure := p.failures[flag]
	p.mu.Unlock()
	switch {
	case failure != nil:
		return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: openfeature.ProviderResolutionDetail{
			ResolutionError: openfeature.NewGeneralResolutionError(failure.Error()),
			Reason:          openfeature.ErrorReason,
		}}
	case !ok:
		return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: openfeature.ProviderResolutionDetail{
			ResolutionError: openfeature.NewFlagNotFoundResolutionError("flag " + flag + " is not set"),
			Reason:          openfeature.ErrorReason,
		}}
	}
	return openfeature.StringResolutionDetail{Value: value, ProviderResolutionDetail: openfeature.ProviderResolutionDetail{
		Reason:  openfeature.StaticReason,
		Variant: value,
	}}
}

// Client returns an OpenFeature client over p, from an API instance of its
// own that is shut down when the test ends. A ready provider is registered
// and waited for; an unready one is registered without waiting.
func Client(tb testing.TB, p *Provider) *openfeature.Client {
	tb.Helper()
	api := isolated.NewAPI()
	tb.Cleanup(func() {
		p.MarkReady()
		_ = api.Shutdown(context.WithoutCancel(tb.Context()))
	})
	var err error
	select {
	case <-p.ready:
		err = api.SetProviderAndWait(tb.Context(), p)
	default:
		err = api.SetProvider(tb.Context(), p)
	}
	if err != nil {
		tb.Fatalf("flagstest: set provider: %v", err)
	}
	return api.NewClient()
}

// Evaluator returns a stage evaluator over a fresh ready [Provider] holding
// stages, and the provider so the test can change stages or inject faults.
func Evaluator(tb testing.TB, stages map[string]flags.Stage, opts ...flags.Option) (*flags.Evaluator, *Provider) {
	tb.Helper()
	p := NewProvider(stages)
	ev, err := flags.NewEvaluator(Client(tb, p), opts...)
	if err != nil {
		tb.Fatalf("flagstest: %v", err)
	}
	// The provider keys flags by migration name: a key prefix would make
	// every evaluation miss and fall back, silently.
	if f, err := ev.Flag("flagstest"); err == nil && f.Key() != "flagstest" {
		tb.Fatalf("flagstest: WithFlagKeyPrefix is not supported by Evaluator (the fake provider keys flags by migration name); build the evaluator with flags.NewEvaluator and set flags with Provider.SetRaw by key")
	}
	return ev, p
}

// Flag returns the flag of one migration set to stage s, and its provider.
func Flag(tb testing.TB, migration string, s flags.Stage, opts ...flags.Option) (*flags.Flag, *Provider) {
	tb.Helper()
	ev, p := Evaluator(tb, map[string]flags.Stage{migration: s}, opts...)
	f, err := ev.Flag(migration)
	if err != nil {
		tb.Fatalf("flagstest: %v", err)
	}
	return f, p
}
