package backfill

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The WAL bucket, on an injected clock: a second's worth of the cap
// passes, more is paid back at the cap with waits of at most walRecheck,
// readings out of order count once, and idle time refills no more than
// a second's worth.
func TestWALRateBucket(t *testing.T) {
	t.Parallel()
	const limit = 1000
	w := &walRate{limit: limit}
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	assert.Zero(t, w.observe(5_000, at(0)), "the first reading sets the start")
	assert.Zero(t, w.observe(6_000, at(0)), "one second's worth passes")
	th := w.observe(7_000, at(0))
	assert.Equal(t, walRecheck, th.Wait, "a second in debt waits one re-check, then reads again")
	assert.True(t, strings.HasPrefix(th.Reason, "WAL rate over 1000 bytes/s"), th.Reason)
	th = w.observe(6_500, at(900*time.Millisecond))
	assert.Equal(t, 100*time.Millisecond, th.Wait, "an earlier position read late counts nothing; 0.9s paid back")
	assert.Zero(t, w.observe(7_000, at(time.Second)), "paid back at the cap")
	th = w.observe(8_500, at(time.Hour))
	assert.Positive(t, th.Wait, "an idle hour refills one second's worth, not an hour's")
	assert.Zero(t, w.observe(8_500, at(time.Hour+500*time.Millisecond)))
	// A reading far ahead (many seconds' worth at once) is a debt of as
	// many seconds, waited out one re-check at a time.
	th = w.observe(8_500+60*limit, at(time.Hour+500*time.Millisecond))
	assert.Equal(t, walRecheck, th.Wait)
	assert.Positive(t, w.observe(8_500+60*limit, at(time.Hour+time.Minute)).Wait, "still 0.5s in debt")
	assert.Zero(t, w.observe(8_500+60*limit, at(time.Hour+time.Minute+time.Second)))
}
