package dualwrite

import (
	"context"
	"errors"
	"log/slog"

	"github.com/schemashift/schemashift/flags"
)

// SlogObserver logs what the adapters do: failed calls, mismatches,
// failed comparisons and fallbacks at Warn, successful calls, matching
// comparisons and dropped shadow reads at Debug. It is safe for concurrent
// use.
type SlogObserver struct {
	log *slog.Logger
}

var _ Observer = (*SlogObserver)(nil)

// NewSlogObserver returns an observer that logs to log. Errors are logged
// with their text; a dropped shadow read logs at Debug (count drops with a
// metrics observer: they come in bursts when the system is loaded).
func NewSlogObserver(log *slog.Logger) (*SlogObserver, error) {
	if log == nil {
		return nil, errors.New("new slog observer: logger is nil")
	}
	return &SlogObserver{log: log}, nil
}

// ObserveCall implements [Observer].
func (o *SlogObserver) ObserveCall(ctx context.Context, c Call) {
	level := slog.LevelDebug
	if c.Err != nil {
		level = slog.LevelWarn
	}
	if !o.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("migration", c.Migration), slog.String("stage", c.Stage.String()),
		slog.String("op", c.Op.String()), slog.String("origin", c.Origin.String()),
		slog.String("role", c.Role.String()), slog.Duration("duration", c.Duration),
	}
	msg := "schemashift call"
	if c.Err != nil {
		attrs = append(attrs, slog.String("error", c.Err.Error()))
		msg = "schemashift call failed"
	}
	o.log.LogAttrs(ctx, level, msg, attrs...)
}

// ObserveComparison implements [Observer]. Diffs are logged as they are, so
// sensitive fields stay redacted; a failure is logged with its kind (the
// failed call itself is logged by ObserveCall).
func (o *SlogObserver) ObserveComparison(ctx context.Context, c Comparison) {
	level := slog.LevelDebug
	msg := "schemashift shadow read matched"
	switch {
	case c.Fault != NoFault:
		level, msg = slog.LevelWarn, "schemashift shadow comparison failed"
	case !c.Match:
		level, msg = slog.LevelWarn, "schemashift shadow read mismatch"
	}
	if !o.log.Enabled(ctx, level) {
		return
	}
	diffs := make([]string, len(c.Diffs))
	for i, d := range c.Diffs {
		diffs[i] = d.String()
	}
	attrs := []slog.Attr{slog.String("migration", c.Migration), slog.String("stage", c.Stage.String())}
	if c.Fault != NoFault {
		attrs = append(attrs, slog.String("fault", c.Fault.String()))
	}
	o.log.LogAttrs(ctx, level, msg, append(attrs, slog.Any("diffs", diffs))...)
}

// ObserveShadowDrop implements [Observer].
func (o *SlogObserver) ObserveShadowDrop(ctx context.Context, d ShadowDrop) {
	if !o.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	o.log.LogAttrs(ctx, slog.LevelDebug, "schemashift shadow read dropped",
		slog.String("migration", d.Migration), slog.String("stage", d.Stage.String()),
		slog.String("reason", d.Reason.String()))
}

// ObserveFallback implements [flags.Observer].
func (o *SlogObserver) ObserveFallback(ctx context.Context, f flags.Fallback) {
	o.log.LogAttrs(ctx, slog.LevelWarn, "schemashift stage fallback",
		slog.String("migration", f.Migration), slog.String("flag", f.FlagKey),
		slog.String("stage", f.Stage.String()), slog.String("reason", f.Reason.String()),
		slog.String("error", errString(f.Err)))
}
