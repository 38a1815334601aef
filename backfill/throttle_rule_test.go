package backfill

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/schemashift/schemashift/internal/dialect"
)

func some(f float64) sql.Null[float64] { return sql.Null[float64]{V: f, Valid: true} }

// The rule of ReplicationLag, case by case: what is a replica, what is
// caught up, and what is unknown.
func TestReplicationLagRule(t *testing.T) {
	t.Parallel()
	live := func(name string, lag float64) dialect.Replica {
		return dialect.Replica{Name: name, State: "streaming", Writes: true, Behind: some(100), Lag: some(lag), ReplyAge: some(0.5)}
	}
	o := lagOptions{recheck: 200 * time.Millisecond, stale: 5 * time.Second}
	expect := func(m func(*lagOptions)) lagOptions { c := o; m(&c); return c }
	for _, tc := range []struct {
		name    string
		rs      []dialect.Replica
		o       lagOptions
		lag     time.Duration
		unknown []string // each a part of one reason, in order
	}{
		{name: "none", o: o},
		{name: "live", rs: []dialect.Replica{live("a", 1.5), live("b", 0.25)}, o: o, lag: 1500 * time.Millisecond},
		{name: "caught up idle, no lag shown, long silent",
			rs: []dialect.Replica{{Name: "a", State: "streaming", Writes: true, Behind: some(0), ReplyAge: some(3600)}}, o: o},
		{name: "not reported", rs: []dialect.Replica{{Name: "a", State: "startup"}}, o: o, unknown: []string{`"a" has not reported`}},
		{name: "not visible to the role", rs: []dialect.Replica{{}}, o: o, unknown: []string{`"" has not reported`}},
		{name: "stale", rs: []dialect.Replica{func() dialect.Replica { r := live("a", 0.1); r.ReplyAge = some(6); return r }()},
			o: o, unknown: []string{`"a" silent for over 5s`}},
		{name: "no reply time", rs: []dialect.Replica{func() dialect.Replica { r := live("a", 0.1); r.ReplyAge = sql.Null[float64]{}; return r }()},
			o: o, unknown: []string{`"a" silent`}},
		{name: "behind without lag", rs: []dialect.Replica{func() dialect.Replica { r := live("a", 0); r.Lag = sql.Null[float64]{}; return r }()},
			o: o, unknown: []string{`"a" shows no lag 100 bytes behind`}},
		{name: "a base backup and a WAL receiver are not replicas",
			rs: []dialect.Replica{{Name: "pg_basebackup", State: "backup"}, {Name: "pg_receivewal", State: "streaming", Writes: true}},
			o:  expect(func(o *lagOptions) { o.replicas = 1 }), unknown: []string{"0 of 1 replicas connected"}},
		{name: "too few", rs: []dialect.Replica{live("a", 0.1)}, o: expect(func(o *lagOptions) { o.replicas = 2 }),
			lag: 100 * time.Millisecond, unknown: []string{"1 of 2 replicas connected"}},
		{name: "named missing, hostile names quoted", rs: []dialect.Replica{live("a\nb", 0.1)},
			o:   expect(func(o *lagOptions) { o.names = []string{"a\nb", "c'<x>"} }),
			lag: 100 * time.Millisecond, unknown: []string{`replica "c'<x>" not connected`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lag, unknown := judgeReplicas(tc.rs, tc.o)
			assert.Equal(t, tc.lag, lag)
			assert.Len(t, unknown, len(tc.unknown), "%q", unknown)
			for i, u := range tc.unknown {
				if i < len(unknown) {
					assert.Contains(t, unknown[i], u)
					assert.NotContains(t, unknown[i], "\n")
				}
			}
			th := lagThrottle(tc.o, time.Second, lag, unknown, "")
			switch {
			case len(unknown) > 0:
				assert.Equal(t, tc.o.recheck, th.Wait, "unknown throttles for one re-check")
				assert.True(t, strings.HasPrefix(th.Reason, "replication lag unknown: "), th.Reason)
			case lag > time.Second:
				assert.Equal(t, tc.o.recheck, th.Wait, "over the limit: at most one re-check, not the lag")
			default:
				assert.Zero(t, th)
			}
		})
	}
	assert.Equal(t, minLagWait, lagThrottle(o, time.Second, time.Second+time.Microsecond, nil, "").Wait, "just over: no busy loop")
	assert.Equal(t, 50*time.Millisecond, lagThrottle(o, time.Second, 1050*time.Millisecond, nil, "").Wait, "over by less than a re-check")
}
