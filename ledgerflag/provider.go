package ledgerflag

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/stringflag"
	"github.com/schemashift/schemashift/ledger"
)

// Provider is an OpenFeature provider that serves each migration's
// stage from the ledger: the default source of stages, so that advancing
// the ledger changes what every instance evaluates within one poll
// interval. Flag keys are migration names.
//
// It polls schemashift_migrations and caches the stages. When the database
// cannot be read it keeps serving the last stages it read and goes stale
// (PROVIDER_STALE), and back to ready when a poll succeeds; a change of
// stage is announced with PROVIDER_CONFIGURATION_CHANGED. It is safe for
// concurrent use; OpenFeature starts and stops its polling (Init and
// Shutdown), or call Close.
type Provider struct {
	stringflag.OnlyStrings
	db   Pool
	poll time.Duration

	mu     sync.RWMutex
	stages map[string]string
	stale  bool

	events chan openfeature.Event
	stop   context.CancelFunc
	done   chan struct{}
	start  sync.Once
	closed sync.Once
}

var (
	_ openfeature.FeatureProvider          = (*Provider)(nil)
	_ openfeature.ContextAwareStateHandler = (*Provider)(nil)
	_ openfeature.EventHandler             = (*Provider)(nil)
)

// Pool is the pool a [Provider] polls, *sql.DB or *sqlx.DB: both are
// safe for concurrent use; the caller closes it, after the provider. A
// pool of no supported database fails the provider's reads, its first
// one (Init) included.
type Pool interface {
	ledger.DB
	Driver() driver.Driver
}

var (
	_ Pool = (*sql.DB)(nil)
	_ Pool = (*sqlx.DB)(nil)
)

// New returns a provider polling db every poll interval.
func New(db Pool, poll time.Duration) (*Provider, error) {
	if v := reflect.ValueOf(db); db == nil || v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("new ledger provider: db is nil")
	}
	if poll <= 0 {
		return nil, fmt.Errorf("new ledger provider: poll interval %v is not positive", poll)
	}
	if _, err := dialects.ForPool(db); err != nil {
		return nil, fmt.Errorf("new ledger provider: %w", err)
	}
	return &Provider{db: db, poll: poll, stages: map[string]string{}, events: make(chan openfeature.Event, 16)}, nil
}

// Metadata implements openfeature.FeatureProvider.
func (p *Provider) Metadata() openfeature.Metadata {
	return openfeature.Metadata{Name: "schemashift-ledger"}
}

// EventChannel implements openfeature.EventHandler.
func (p *Provider) EventChannel() <-chan openfeature.Event { return p.events }

// InitWithContext reads the ledger once and starts polling. A ledger that
// cannot be read fails the init; polling goes on and the provider turns
// ready when a read succeeds.
func (p *Provider) InitWithContext(ctx context.Context, _ openfeature.EvaluationContext) error {
	err := p.refresh(ctx)
	p.start.Do(func() {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		p.stop, p.done = cancel, make(chan struct{})
		go p.loop(pctx)
	})
	if err != nil {
		return fmt.Errorf("read ledger: %w", err)
	}
	return nil
}

// Init implements openfeature.StateHandler.
func (p *Provider) Init(ec openfeature.EvaluationContext) error {
	return p.InitWithContext(context.Background(), ec)
}

// ShutdownWithContext implements openfeature.ContextAwareStateHandler.
func (p *Provider) ShutdownWithContext(context.Context) error { return p.Close() }

// Shutdown implements openfeature.StateHandler.
func (p *Provider) Shutdown() { _ = p.Close() }

// Close stops polling and waits for it. It is idempotent.
func (p *Provider) Close() error {
	p.start.Do(func() {}) // no polling may start after Close
	p.closed.Do(func() {
		if p.stop != nil {
			p.stop()
			<-p.done
		}
	})
	return nil
}

func (p *Provider) loop(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(p.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = p.refresh(ctx)
		}
	}
}

// refresh reads every stage and announces what changed.
func (p *Provider) refresh(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, max(p.poll, time.Second))
	defer cancel()
	next, err := ledger.Stages(qctx, p.db)
	p.mu.Lock()
	if err != nil {
		wasStale := p.stale
		p.stale = true
		p.mu.Unlock()
		if !wasStale && ctx.Err() == nil {
			p.emit(openfeature.ProviderStale, "ledger unreachable, serving the last stages read: "+err.Error(), nil)
		}
		return err
	}
	var changed []string
	for m, s := range next {
		if p.stages[m] != s {
			changed = append(changed, m)
		}
	}
	for m := range p.stages {
		if _, ok := next[m]; !ok {
			changed = append(changed, m)
		}
	}
	wasStale := p.stale
	p.stages, p.stale = next, false
	p.mu.Unlock()
	if wasStale {
		p.emit(openfeature.ProviderReady, "ledger reachable again", nil)
	}
	if len(changed) > 0 {
		slices.Sort(changed)
		p.emit(openfeature.ProviderConfigChange, "stages changed", changed)
	}
	return nil
}

func (p *Provider) emit(t openfeature.EventType, msg string, flagsChanged []string) {
	ev := openfeature.Event{ProviderName: "schemashift-ledger", EventType: t,
		ProviderEventDetails: openfeature.ProviderEventDetails{Message: msg, FlagChanges: flagsChanged}}
	select {
	case p.events <- ev:
	default: // nobody listening fast enough; the state is what matters
	}
}

// Stale reports whether the last poll failed.
func (p *Provider) Stale() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stale
}

// Stages returns the cached stages.
func (p *Provider) Stages() map[string]string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return maps.Clone(p.stages)
}

// StringEvaluation implements openfeature.FeatureProvider.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, _ openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	p.mu.RLock()
	s, ok := p.stages[flag]
	stale := p.stale
	p.mu.RUnlock()
	if !ok {
		return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: openfeature.ProviderResolutionDetail{
			ResolutionError: openfeature.NewFlagNotFoundResolutionError("no migration " + flag + " in the ledger"),
			Reason:          openfeature.ErrorReason,
		}}
	}
	reason := openfeature.StaticReason
	if stale {
		reason = openfeature.CachedReason
	}
	return openfeature.StringResolutionDetail{Value: s, ProviderResolutionDetail: openfeature.ProviderResolutionDetail{Reason: reason, Variant: s}}
}
