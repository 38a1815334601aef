package flags_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
	"github.com/open-feature/go-sdk/openfeature/memprovider"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fallbackLog struct {
	mu  sync.Mutex
	got []flags.Fallback
}

func (l *fallbackLog) ObserveFallback(_ context.Context, f flags.Fallback) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, f)
}

func (l *fallbackLog) all() []flags.Fallback {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]flags.Fallback(nil), l.got...)
}

const migration = "users_split_name"

func TestEvaluatorReturnsProviderStage(t *testing.T) {
	t.Parallel()
	for _, s := range flags.Stages() {
		t.Run(s.String(), func(t *testing.T) {
			t.Parallel()
			f, p := flagstest.Flag(t, migration, s)
			assert.Equal(t, s, f.Stage(t.Context()))
			assert.Equal(t, 1, p.Evaluations(migration))
		})
	}
}

func TestEvaluatorFallbacks(t *testing.T) {
	t.Parallel()
	faults := []struct {
		name   string
		inject func(p *flagstest.Provider)
		reason flags.FallbackReason
	}{
		{"provider error", func(p *flagstest.Provider) { p.Fail(migration, errors.New("connection refused")) }, flags.ProviderError},
		{"unknown variant", func(p *flagstest.Provider) { p.SetRaw(migration, "half-live") }, flags.UnknownVariant},
		{"flag deleted", func(p *flagstest.Provider) { p.Unset(migration) }, flags.FlagNotFound},
	}
	for _, fault := range faults {
		t.Run(fault.name+"/last good stage", func(t *testing.T) {
			t.Parallel()
			log := &fallbackLog{}
			ev, p := flagstest.Evaluator(t, map[string]flags.Stage{migration: flags.Shadow}, flags.WithObserver(log))
			f, err := ev.Flag(migration)
			require.NoError(t, err)
			require.Equal(t, flags.Shadow, f.Stage(t.Context()))

			fault.inject(p)
			s, fb := f.Evaluate(t.Context())
			assert.Equal(t, flags.Shadow, s, "falls back to the last stage seen")
			require.NotNil(t, fb)
			assert.Equal(t, fault.reason, fb.Reason)
			assert.Error(t, fb.Err)
			assert.Equal(t, uint64(1), ev.Stats().Fallbacks[fault.reason])
			assert.Equal(t, uint64(2), ev.Stats().Evaluations)
			require.Len(t, log.all(), 1)
			assert.Equal(t, flags.Fallback{Migration: migration, FlagKey: migration, Stage: flags.Shadow, Reason: fault.reason, Err: fb.Err}, log.all()[0])

			// Recovery: the next good evaluation is used again.
			p.Set(migration, flags.Live)
			assert.Equal(t, flags.Live, f.Stage(t.Context()))
			assert.Equal(t, uint64(1), ev.Stats().TotalFallbacks())
		})
		t.Run(fault.name+"/never seen", func(t *testing.T) {
			t.Parallel()
			ev, p := flagstest.Evaluator(t, map[string]flags.Stage{migration: flags.Complete})
			fault.inject(p)
			s, err := ev.Stage(t.Context(), migration)
			require.NoError(t, err)
			assert.Equal(t, flags.Off, s, "no stage seen yet: off")
			assert.Equal(t, uint64(1), ev.Stats().Fallbacks[fault.reason])
		})
		t.Run(fault.name+"/fixed fallback", func(t *testing.T) {
			t.Parallel()
			ev, p := flagstest.Evaluator(t, map[string]flags.Stage{migration: flags.Live}, flags.WithFallback(flags.DualWrite))
			f, err := ev.Flag(migration)
			require.NoError(t, err)
			require.Equal(t, flags.Live, f.Stage(t.Context()))
			fault.inject(p)
			assert.Equal(t, flags.DualWrite, f.Stage(t.Context()))
		})
	}
}

func TestEvaluatorProviderNotReady(t *testing.T) {
	t.Parallel()
	log := &fallbackLog{}
	p := flagstest.NewUnreadyProvider(map[string]flags.Stage{migration: flags.Live})
	ev, err := flags.NewEvaluator(flagstest.Client(t, p), flags.WithObserver(log))
	require.NoError(t, err)
	f, err := ev.Flag(migration)
	require.NoError(t, err)

	s, fb := f.Evaluate(t.Context())
	assert.Equal(t, flags.Off, s)
	require.NotNil(t, fb)
	assert.Equal(t, flags.ProviderNotReady, fb.Reason)
	assert.Equal(t, 0, p.Evaluations(migration), "the SDK short-circuits an unready provider")
	assert.Equal(t, uint64(1), ev.Stats().Fallbacks[flags.ProviderNotReady])
	require.Len(t, log.all(), 1)

	p.MarkReady()
	require.Eventually(t, func() bool { return f.Stage(t.Context()) == flags.Live }, timeout, tick)
}

func TestEvaluationContextFromCtx(t *testing.T) {
	t.Parallel()
	api := isolated.NewAPI()
	t.Cleanup(func() { _ = api.Shutdown(context.WithoutCancel(t.Context())) })
	// Tenant "acme" is live; everybody else is still in shadow.
	byTenant := func(_ memprovider.InMemoryFlag, ec openfeature.FlattenedContext) (any, openfeature.ProviderResolutionDetail) {
		if ec["tenant"] == "acme" || ec["app_tenant"] == "acme" {
			return "live", openfeature.ProviderResolutionDetail{Variant: "live", Reason: openfeature.TargetingMatchReason}
		}
		return "shadow", openfeature.ProviderResolutionDetail{Variant: "shadow", Reason: openfeature.DefaultReason}
	}
	provider := memprovider.NewInMemoryProvider(map[string]memprovider.InMemoryFlag{
		"schemashift." + migration: {
			Key: "schemashift." + migration, State: memprovider.Enabled, DefaultVariant: "shadow",
			Variants:         map[string]any{"shadow": "shadow", "live": "live"},
			ContextEvaluator: &byTenant,
		},
	})
	require.NoError(t, api.SetProviderAndWait(t.Context(), provider))

	type tenantKey struct{}
	ev, err := flags.NewEvaluator(api.NewClient(),
		flags.WithFlagKeyPrefix("schemashift."),
		flags.WithEvaluationContext(func(ctx context.Context) openfeature.EvaluationContext {
			tenant, _ := ctx.Value(tenantKey{}).(string)
			return openfeature.NewTargetlessEvaluationContext(map[string]any{"app_tenant": tenant})
		}))
	require.NoError(t, err)
	f, err := ev.Flag(migration)
	require.NoError(t, err)
	assert.Equal(t, "schemashift."+migration, f.Key())

	// OpenFeature's transaction context travels in ctx.
	acme := openfeature.WithTransactionContext(t.Context(), openfeature.NewEvaluationContext("user-1", map[string]any{"tenant": "acme"}))
	other := openfeature.WithTransactionContext(t.Context(), openfeature.NewEvaluationContext("user-2", map[string]any{"tenant": "globex"}))
	assert.Equal(t, flags.Live, f.Stage(acme))
	assert.Equal(t, flags.Shadow, f.Stage(other))
	assert.Equal(t, flags.Shadow, f.Stage(t.Context()))
	// The application's own request identity, through WithEvaluationContext.
	assert.Equal(t, flags.Live, f.Stage(context.WithValue(t.Context(), tenantKey{}, "acme")))
	assert.Equal(t, flags.Shadow, f.Stage(context.WithValue(t.Context(), tenantKey{}, "globex")))
	assert.Zero(t, ev.Stats().TotalFallbacks())
}

func TestNewEvaluatorRejectsBadOptions(t *testing.T) {
	t.Parallel()
	client := flagstest.Client(t, flagstest.NewProvider(nil))
	_, err := flags.NewEvaluator(nil)
	assert.ErrorContains(t, err, "client is nil")
	_, err = flags.NewEvaluator(client, flags.WithFallback(flags.Stage(42)))
	assert.ErrorIs(t, err, flags.ErrUnknownStage)
	_, err = flags.NewEvaluator(client, flags.WithObserver(nil))
	assert.ErrorContains(t, err, "observer is nil")
	_, err = flags.NewEvaluator(client, flags.WithEvaluationContext(nil))
	assert.Error(t, err)
	ev, err := flags.NewEvaluator(client)
	require.NoError(t, err)
	_, err = ev.Flag("")
	assert.Error(t, err)
	a, err := ev.Flag("m")
	require.NoError(t, err)
	b, err := ev.Flag("m")
	require.NoError(t, err)
	assert.Same(t, a, b)
}

func TestFlagConcurrentEvaluation(t *testing.T) {
	t.Parallel()
	ev, p := flagstest.Evaluator(t, map[string]flags.Stage{migration: flags.DualWrite})
	f, err := ev.Flag(migration)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			// Stages only move forward here, so each goroutine must see
			// them in order: never an older stage after a newer one.
			seen := flags.Off
			for i := range 200 {
				if g == 0 && i%50 == 0 {
					p.Set(migration, flags.Stages()[i/50+1])
				}
				s := f.Stage(t.Context())
				if s < seen || s < flags.DualWrite || s > flags.Rampdown {
					t.Errorf("stage %v after %v", s, seen)
				}
				seen = s
			}
		})
	}
	wg.Wait()
	assert.Equal(t, uint64(1600), ev.Stats().Evaluations)
	assert.Zero(t, ev.Stats().TotalFallbacks())
}
