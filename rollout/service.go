package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/ledgerflag"
)

// ServiceConfig describes one service instance taking part in rollouts.
// It is read by [Start] and not kept.
type ServiceConfig struct {
	Service string
	Build   string
	// InstanceID names this instance (default: host/pid/random).
	InstanceID string
	// Plans are the migrations this build knows.
	Plans []Plan
	// Heartbeat is the heartbeat interval (default 10s).
	Heartbeat time.Duration
	// Poll is how often the ledger provider reads stages (default 2s). It
	// does not apply with Client: Start refuses the two together.
	Poll time.Duration
	// Client, when set, evaluates stages through the team's own flag
	// service instead of the ledger. The coordinator then sees the fleet
	// through heartbeats only.
	Client flags.Client
	// Observer also receives everything the adapters and the flags report.
	Observer dualwrite.Observer
	// Schema, when set, is what this build requires of the database; Start
	// refuses to run against a database that does not meet it.
	Schema *contract.Schema
	// Clock, when set, is the clock the heartbeat stamps its times with
	// and the plans are registered at (default time.Now); see
	// [fleet.WithClock].
	Clock func() time.Time
	// InstanceOptions are further options of the instance's heartbeat
	// ([fleet.WithSampleRetention], say), applied after those Start sets
	// from the fields above; one that fails makes Start fail.
	InstanceOptions []fleet.Option
}

// Service is what a service instance holds for its rollouts: the stage
// evaluator, the heartbeat, and (by default) the ledger's flag provider.
// It is safe for concurrent use; Close it on shutdown.
type Service struct {
	Evaluator *flags.Evaluator
	Instance  *fleet.Instance
	Provider  *ledgerflag.Provider // nil with ServiceConfig.Client
	api       *openfeature.EvaluationAPI
	observer  dualwrite.Observer
}

// ErrSchemaMismatch: the database's schema does not fit this build.
var ErrSchemaMismatch = errors.New("schema does not fit this build")

// Start is the startup hook of a service: it ensures the ledger, registers
// the plans, checks that the schema fits this build (every expand the
// ledger says is applied has its columns, and the build's declared
// [contract.Schema] is met), starts the heartbeat and the stage source.
// Close the returned Service on shutdown.
func Start(ctx context.Context, pool Pool, cfg ServiceConfig) (*Service, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	db, d, err := sqlxPool(pool)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Poll == 0 {
		cfg.Poll = 2 * time.Second
	}
	if err := ledger.Ensure(ctx, db); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	for i := range cfg.Plans {
		p := cfg.Plans[i] // checked on a copy: Register normalizes its own
		if err := p.validate(ctx, db); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	var names, problems []string
	for _, p := range cfg.Plans {
		if err := register(ctx, db, p, dialect.Tick(clock())); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		names = append(names, p.Migration)
		st, err := ledger.Get(ctx, db, p.Migration)
		if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		if st.Phase >= ledger.Expanded && st.Phase < ledger.Contracted {
			missing, err := missingColumns(ctx, d, db, p.Columns)
			if err != nil {
				return nil, fmt.Errorf("start: %w", err)
			}
			if len(missing) > 0 {
				problems = append(problems, fmt.Sprintf("%s is at %s but lacks %s", p.Migration, st.Phase, strings.Join(missing, ", ")))
			}
		}
	}
	if cfg.Schema != nil {
		var mismatch *contract.MismatchError
		if err := contract.Verify(ctx, db, *cfg.Schema); errors.As(err, &mismatch) {
			problems = append(problems, mismatch.Problems...)
		} else if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("start: %w: %s", ErrSchemaMismatch, strings.Join(problems, "; "))
	}
	opts := []fleet.Option{fleet.WithHeartbeat(cfg.Heartbeat), fleet.WithClock(clock)}
	if cfg.InstanceID != "" {
		opts = append(opts, fleet.WithID(cfg.InstanceID))
	}
	opts = append(opts, cfg.InstanceOptions...)
	inst, err := fleet.NewInstance(db, cfg.Service, cfg.Build, names, opts...)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	s := &Service{Instance: inst, observer: inst.Observer()}
	if cfg.Observer != nil {
		s.observer = dualwrite.Observers(inst.Observer(), cfg.Observer)
	}
	client := cfg.Client
	if client == nil {
		if s.Provider, err = ledgerflag.New(db, cfg.Poll); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		s.api = isolated.NewAPI()
		if err := s.api.SetProviderAndWait(ctx, s.Provider); err != nil {
			_ = s.api.Shutdown(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("start: ledger provider: %w", err)
		}
		client = s.api.NewClient()
	}
	if s.Evaluator, err = flags.NewEvaluator(client, flags.WithObserver(s.observer)); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	if err := inst.Beat(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("start: first heartbeat: %w", err)
	}
	if err := inst.Start(ctx); err != nil { // a new instance: cannot have started or closed
		_ = s.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	return s, nil
}

// check refuses what Start cannot work with, or options that conflict,
// with [ErrInvalidArgument].
func (cfg ServiceConfig) check() error {
	switch {
	case cfg.Service == "" || cfg.Build == "":
		return fmt.Errorf("%w: service and build are required", ErrInvalidArgument)
	case cfg.Heartbeat < 0:
		return fmt.Errorf("%w: heartbeat %v is negative", ErrInvalidArgument, cfg.Heartbeat)
	case cfg.Poll < 0:
		return fmt.Errorf("%w: poll %v is negative", ErrInvalidArgument, cfg.Poll)
	case cfg.Poll != 0 && cfg.Client != nil:
		// Stages come from the team's flag service then; the ledger's
		// provider, whose interval Poll is, does not run.
		return fmt.Errorf("%w: Poll is the ledger provider's interval and does not apply with Client", ErrInvalidArgument)
	}
	return nil
}

// Flag returns the stage flag of a migration.
func (s *Service) Flag(migration string) (*flags.Flag, error) { return s.Evaluator.Flag(migration) }

// Observer returns the observer to give the dualwrite adapters: it feeds
// the heartbeat (and the configured observer).
func (s *Service) Observer() dualwrite.Observer { return s.observer }

// Close stops the heartbeat (after a last one) and the ledger provider.
func (s *Service) Close() error {
	err := s.Instance.Close()
	if s.api != nil {
		err = errors.Join(err, s.api.Shutdown(context.Background()))
	}
	return err
}
