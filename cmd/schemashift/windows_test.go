package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// `backfill run --window` runs only inside the window: started outside
// it, the job does nothing and `backfill status` says until when; a
// window that means nothing is refused as bad input, before any work.
func TestCLIBackfillRunWindow(t *testing.T) {
	t.Parallel()
	url, _ := setup(t)
	for _, args := range [][]string{
		{"advance", "users_split_name", "--reason", "start"},
		{"advance", "users_split_name"},
		{"force", "users_split_name", "--reason", "no fleet here"},
	} {
		r := cliRun(t, url, args...)
		require.Equal(t, 0, r.code, r.stderr)
	}
	for in, want := range map[string]string{
		"01:00-01:00 UTC":      "end equals start",
		"01:00-05:00 Local":    "Local differs from host to host",
		"01:00-05:00 <b>x</b>": "unknown time zone",
	} {
		r := cliRun(t, url, "backfill", "run", "users_split_name", "--window", in)
		assert.Equal(t, 2, r.code, in)
		assert.Contains(t, r.stderr, want, in)
	}

	// Windows opening six and eight hours from now, on the real clock the
	// CLI keeps.
	now := time.Now().UTC()
	start := now.Add(6 * time.Hour).Truncate(time.Minute)
	window := start.Format("15:04") + "-" + start.Add(time.Hour).Format("15:04") + " UTC"
	later := start.Add(2*time.Hour).Format("Mon 15:04") + "-" + start.Add(3*time.Hour).Format("15:04") + " UTC"
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"backfill", "run", "users_split_name", "--window", window, "--window", later},
			&out, &errOut, func(k string) string {
				if k == "DATABASE_URL" {
					return url
				}
				return ""
			})
	}()
	var r result
	require.Eventually(t, func() bool {
		r = cliRun(t, url, "backfill", "status", "users_split_name")
		return r.code == 0 && strings.Contains(r.stdout, "outside run windows")
	}, 30*time.Second, 10*time.Millisecond, "last: %s %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "users_split_name: running (outside run windows until ")
	assert.Contains(t, r.stdout, ", 0/3000 rows")
	cancel()
	select {
	case code := <-done:
		assert.NotEqual(t, 0, code, "cancelled mid-wait")
	case <-time.After(time.Minute):
		t.Fatal("backfill run did not end when cancelled")
	}
	assert.Contains(t, errOut.String(), "(outside run windows until ", "the progress lines say it too")
}
