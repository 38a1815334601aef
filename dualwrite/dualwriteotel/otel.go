// Package dualwriteotel reports what package dualwrite does as OpenTelemetry
// metrics:
//
//	schemashift.dualwrite.calls        counter   migration, stage, op, origin, role, outcome
//	schemashift.dualwrite.duration     histogram (s) migration, op, origin, role
//	schemashift.dualwrite.comparisons  counter   migration, stage, result (match|mismatch|error|timeout|panic)
//	schemashift.dualwrite.shadow_drops counter   migration, stage, reason
//	schemashift.flags.fallbacks        counter   migration, stage, reason
package dualwriteotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
)

// Observer records metrics through an OpenTelemetry meter. It is safe for
// concurrent use and holds nothing to close (the meter provider owns the
// export).
type Observer struct {
	calls       metric.Int64Counter
	duration    metric.Float64Histogram
	comparisons metric.Int64Counter
	drops       metric.Int64Counter
	fallbacks   metric.Int64Counter
}

var _ dualwrite.Observer = (*Observer)(nil)

// New creates the instruments on meter.
func New(meter metric.Meter) (*Observer, error) {
	if meter == nil {
		return nil, errors.New("new otel observer: meter is nil")
	}
	var (
		o   Observer
		err error
	)
	if o.calls, err = meter.Int64Counter("schemashift.dualwrite.calls",
		metric.WithDescription("Calls to an origin, by stage, operation, origin, role and outcome."), metric.WithUnit("{call}")); err != nil {
		return nil, fmt.Errorf("create calls counter: %w", err)
	}
	if o.duration, err = meter.Float64Histogram("schemashift.dualwrite.duration",
		metric.WithDescription("Latency of calls to an origin."), metric.WithUnit("s")); err != nil {
		return nil, fmt.Errorf("create duration histogram: %w", err)
	}
	if o.comparisons, err = meter.Int64Counter("schemashift.dualwrite.comparisons",
		metric.WithDescription("Shadow read comparisons, by result: a match, a mismatch, or a failure (error, timeout, panic)."),
		metric.WithUnit("{comparison}")); err != nil {
		return nil, fmt.Errorf("create comparisons counter: %w", err)
	}
	if o.drops, err = meter.Int64Counter("schemashift.dualwrite.shadow_drops",
		metric.WithDescription("Shadow reads skipped to protect the caller."), metric.WithUnit("{read}")); err != nil {
		return nil, fmt.Errorf("create shadow drops counter: %w", err)
	}
	if o.fallbacks, err = meter.Int64Counter("schemashift.flags.fallbacks",
		metric.WithDescription("Stage evaluations that fell back."), metric.WithUnit("{evaluation}")); err != nil {
		return nil, fmt.Errorf("create fallbacks counter: %w", err)
	}
	return &o, nil
}

// ObserveCall implements dualwrite.Observer.
func (o *Observer) ObserveCall(ctx context.Context, c dualwrite.Call) {
	outcome := "ok"
	if c.Err != nil {
		outcome = "error"
	}
	o.calls.Add(ctx, 1, metric.WithAttributes(
		attribute.String("migration", c.Migration), attribute.String("stage", c.Stage.String()),
		attribute.String("op", c.Op.String()), attribute.String("origin", c.Origin.String()),
		attribute.String("role", c.Role.String()), attribute.String("outcome", outcome)))
	o.duration.Record(ctx, c.Duration.Seconds(), metric.WithAttributes(
		attribute.String("migration", c.Migration), attribute.String("op", c.Op.String()),
		attribute.String("origin", c.Origin.String()), attribute.String("role", c.Role.String())))
}

// ObserveComparison implements dualwrite.Observer. A failed comparison's
// result is its kind of failure, so that consistency (match over all) can
// be computed without counting a failure as a match.
func (o *Observer) ObserveComparison(ctx context.Context, c dualwrite.Comparison) {
	result := "match"
	switch {
	case c.Fault != dualwrite.NoFault:
		result = c.Fault.String()
	case !c.Match:
		result = "mismatch"
	}
	o.comparisons.Add(ctx, 1, metric.WithAttributes(
		attribute.String("migration", c.Migration), attribute.String("stage", c.Stage.String()),
		attribute.String("result", result)))
}

// ObserveShadowDrop implements dualwrite.Observer.
func (o *Observer) ObserveShadowDrop(ctx context.Context, d dualwrite.ShadowDrop) {
	o.drops.Add(ctx, 1, metric.WithAttributes(
		attribute.String("migration", d.Migration), attribute.String("stage", d.Stage.String()),
		attribute.String("reason", d.Reason.String())))
}

// ObserveFallback implements flags.Observer.
func (o *Observer) ObserveFallback(ctx context.Context, f flags.Fallback) {
	o.fallbacks.Add(ctx, 1, metric.WithAttributes(
		attribute.String("migration", f.Migration), attribute.String("stage", f.Stage.String()),
		attribute.String("reason", f.Reason.String())))
}
