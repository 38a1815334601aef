package dualwrite_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

func TestSlogObserver(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	obs, err := dualwrite.NewSlogObserver(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	require.NoError(t, err)
	_, err = dualwrite.NewSlogObserver(nil)
	require.Error(t, err)
	ev, p := flagstest.Evaluator(t, map[string]flags.Stage{migration: flags.Shadow}, flags.WithObserver(obs))
	flag, err := ev.Flag(migration)
	require.NoError(t, err)
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (user, error) { return user{GivenName: "Ada", Email: "ada@example.com"}, nil },
		func(context.Context, int) (user, error) { return user{GivenName: "Bea", Email: "bea@example.com"}, nil },
		dualwrite.WithObserver(obs))
	require.NoError(t, err)
	_, err = r.Read(t.Context(), 1)
	require.NoError(t, err)
	r.Wait()
	p.Fail(migration, errors.New("flagd unreachable"))
	_, err = r.Read(t.Context(), 1)
	require.NoError(t, err)
	r.Wait() // Close would cancel a shadow read still in flight
	require.NoError(t, r.Close())

	out := buf.String()
	assert.Contains(t, out, "schemashift shadow read mismatch")
	assert.Contains(t, out, `GivenName: old=\"Ada\" new=\"Bea\"`)
	assert.Contains(t, out, "Email: old=[redacted] new=[redacted]")
	assert.NotContains(t, out, "example.com", "sensitive values never reach the log")
	assert.Contains(t, out, "schemashift stage fallback")
	assert.Contains(t, out, "reason=provider_error")
	assert.Contains(t, out, "flagd unreachable")
	assert.NotContains(t, out, "schemashift call ", "successful calls log at debug only")
}

// A failed shadow read is logged as a failure, not as a mismatch.
func TestSlogObserverLogsFailures(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	obs, err := dualwrite.NewSlogObserver(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	require.NoError(t, err)
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (user, error) { return user{GivenName: "Ada", Email: "ada@example.com"}, nil },
		func(context.Context, int) (user, error) {
			return user{}, errors.New("relation users_v2 does not exist")
		},
		dualwrite.WithObserver(obs))
	require.NoError(t, err)
	_, err = r.Read(t.Context(), 1)
	require.NoError(t, err)
	r.Wait()
	require.NoError(t, r.Close())
	out := buf.String()
	assert.Contains(t, out, "schemashift shadow comparison failed")
	assert.Contains(t, out, "fault=error")
	assert.NotContains(t, out, "schemashift shadow read mismatch")
	assert.NotContains(t, out, "example.com")
}
