package board_test

import (
	"bufio"
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// statements counts the statements a pgx connection sends.
type statements struct{ n atomic.Int64 }

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.n.Add(1)
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// stream opens GET /events?since=… on srv, for as long as ctx lasts.
func stream(t *testing.T, ctx context.Context, srv, since string) *bufio.Reader {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv+"/events?since="+url.QueryEscape(since), nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	require.Equal(t, http.StatusOK, res.StatusCode)
	return bufio.NewReader(res.Body)
}

// event reads a stream's next event (comments and retry: aside).
func event(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
}

// pageFingerprint is the state the board's page is rendered from now.
func pageFingerprint(t *testing.T, srv string) string {
	t.Helper()
	_, page := get(t, http.DefaultClient, srv+"/")
	fp := between(page, `data-fingerprint="`, `"`)
	require.NotEmpty(t, fp)
	return fp
}

// Fifty open streams cost the database what one does: the board reads
// its state once per poll for all of them (it was a whole Snapshot per
// stream per poll, and a pooled connection each).
func TestEventStreamsShareOneReading(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig(pgtest.URL(t))
	require.NoError(t, err)
	count := &statements{}
	cfg.Tracer = count
	db := sqlx.NewDb(stdlib.OpenDB(*cfg), "pgx")
	t.Cleanup(func() { db.Close() })
	rollouttest.UsersDB(t, db)
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err)
	ticks := make(chan time.Time)
	b, err := board.New(c, board.WithTicks(ticks)) // read-only
	require.NoError(t, err)
	srv := newServer(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	// perPolls is the statements of polls readings, from the end of the
	// one in flight: each send returns once the reading before it is done.
	const polls = 5
	perPolls := func() int64 {
		ticks <- time.Time{}
		start := count.n.Load()
		for range polls {
			ticks <- time.Time{}
		}
		return count.n.Load() - start
	}
	streams := []*bufio.Reader{stream(t, ctx, srv, "")}
	one := perPolls()
	require.Positive(t, one)
	for range 49 {
		streams = append(streams, stream(t, ctx, srv, ""))
	}
	fifty := perPolls()
	t.Logf("statements over %d polls: 1 stream %d, 50 streams %d; connections open %d", polls, one, fifty, db.Stats().OpenConnections)
	assert.LessOrEqual(t, float64(fifty), 1.5*float64(one), "the streams share one reading per poll")
	assert.LessOrEqual(t, db.Stats().OpenConnections, 2, "one reader, one connection at a time")
	fp := pageFingerprint(t, srv)
	for i, r := range streams {
		ev, data := event(t, r)
		assert.Equal(t, "change", ev, "stream %d", i)
		assert.Equal(t, fp, data, "stream %d hears the board's state", i)
	}
}

// Streams beyond the cap are refused with 503 and a Retry-After; a
// stream that ends frees its place; a closed board refuses every one.
func TestEventStreamsCapped(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err)
	_, err = board.New(c, board.WithMaxStreams(0))
	require.Error(t, err)
	b, err := board.New(c, board.WithMaxStreams(2), board.WithPollInterval(3*time.Second), board.WithTicks(make(chan time.Time)))
	require.NoError(t, err)
	srv := newServer(t, b)

	first, leave := context.WithCancel(t.Context())
	defer leave()
	stream(t, first, srv, "")
	stream(t, t.Context(), srv, "")
	res, body := get(t, http.DefaultClient, srv+"/events")
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode, body)
	assert.Equal(t, "6", res.Header.Get("Retry-After"), "twice the poll interval, in seconds")
	leave()
	require.Eventually(t, func() bool {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv+"/events", nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		ok := res.StatusCode == http.StatusOK
		if !ok {
			res.Body.Close()
		} else {
			t.Cleanup(func() { res.Body.Close() })
		}
		return ok
	}, 10*time.Second, 5*time.Millisecond, "the stream that left frees its place")
	require.NoError(t, b.Close())
	res, _ = get(t, http.DefaultClient, srv+"/events")
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Empty(t, res.Header.Get("Retry-After"), "a closed board opens no stream later either")
}

// A heartbeat that moves nothing but the time an instance was last seen
// is no change: no open page fetches itself again for it. An advance is.
func TestHeartbeatIsNoChange(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	clk := rollouttest.NewClock()
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)}, rollout.WithClock(clk.Now))
	require.NoError(t, err)
	_, err = c.Advance(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "setup"})
	require.NoError(t, err)
	in := rollouttest.InstanceAt(t, db, "api-1", "users_split_name", clk.Now)
	rollouttest.Beat(t, in, flags.Off)
	ticks := make(chan time.Time)
	b, err := board.New(c, board.WithTicks(ticks))
	require.NoError(t, err)
	srv := newServer(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	before := pageFingerprint(t, srv)
	r1 := stream(t, ctx, srv, "")
	_, fp := event(t, r1)
	require.Equal(t, before, fp)
	snap, err := b.Snapshot(t.Context())
	require.NoError(t, err)
	seen := snap.Migrations[0].Fleet.Instances[0].LastSeen

	clk.Add(5 * time.Second)
	require.NoError(t, in.Beat(t.Context())) // no call recorded since the last
	snap, err = b.Snapshot(t.Context())
	require.NoError(t, err)
	require.True(t, snap.Migrations[0].Fleet.Instances[0].LastSeen.After(seen), "the heartbeat moved the time last seen")
	assert.Equal(t, before, pageFingerprint(t, srv), "the page rendered after the heartbeat is of the same state")
	ticks <- time.Time{}
	ticks <- time.Time{} // a reading after the heartbeat is done (and the next under way)
	// A stream opened now starts from that reading: it says nothing of it.
	r2 := stream(t, ctx, srv, before)

	_, err = c.Advance(t.Context(), rollout.Request{Migration: "users_split_name", Actor: "operator"})
	require.NoError(t, err)
	ticks <- time.Time{}
	ticks <- time.Time{} // a reading after the advance is done
	after := pageFingerprint(t, srv)
	require.NotEqual(t, before, after)
	// A reading in flight as the advance ran may have read part of the
	// state before it and part after (the board's reads are not one
	// snapshot): a change of its own, told before the advance's. None is
	// the heartbeat's (the page's fingerprint did not move for it, above).
	for i, r := range []*bufio.Reader{r2, r1} {
		var data string
		for n := 0; n < 3 && data != after; n++ {
			var ev string
			ev, data = event(t, r)
			assert.Equal(t, "change", ev, "stream %d", i+1)
			assert.NotEqual(t, before, data, "stream %d: a change to the state the heartbeat left", i+1)
		}
		assert.Equal(t, after, data, "stream %d: the advance's change is told", i+1)
	}
}

// lockedBuffer is a log's destination, read by the test while the board
// writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// When the board cannot read its state, an open page hears only that it
// is unavailable; the error goes to the board's logger. When it can
// again, the page is told, even of the state it has.
func TestEventStreamFailureSaysUnavailable(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{rollouttest.UsersPlan(db)})
	require.NoError(t, err)
	_, err = board.New(c, board.WithLogger(nil))
	require.Error(t, err)
	logs := &lockedBuffer{}
	ticks := make(chan time.Time)
	b, err := board.New(c, board.WithTicks(ticks), board.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.NoError(t, err)
	srv := newServer(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	r := stream(t, ctx, srv, "")
	_, fp := event(t, r)
	_, err = db.ExecContext(t.Context(), `ALTER TABLE schemashift_events RENAME TO "schemashift_events <gone>"`)
	require.NoError(t, err)
	ticks <- time.Time{}
	ticks <- time.Time{} // the reading without the table is done
	ev, data := event(t, r)
	assert.Equal(t, "failure", ev)
	assert.Equal(t, "unavailable", data, "no database error reaches an anonymous page")
	assert.Contains(t, logs.String(), "schemashift_events", "the logger has the error")

	_, err = db.ExecContext(t.Context(), `ALTER TABLE "schemashift_events <gone>" RENAME TO schemashift_events`)
	require.NoError(t, err)
	ticks <- time.Time{}
	ticks <- time.Time{}
	ev, data = event(t, r)
	assert.Equal(t, "change", ev, "readable again: the page is told")
	assert.Equal(t, fp, data)
	assert.Contains(t, logs.String(), "again")
}

// Under a path prefix (http.StripPrefix), every action comes back to the
// page it was posted from, within the board's mount: the board and a
// migration's page of a hostile name, following the Location as a
// browser does, from the URL it posted to.
func TestActionRedirectUnderPrefix(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, dbtest.SQLite(t))
	plan := rollouttest.UsersPlan(db)
	plan.Migration = hostile
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
	require.NoError(t, err)
	b, err := board.New(c, allowAll())
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/schemashift/", http.StripPrefix("/schemashift", b))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "outside the board: "+r.URL.Path, http.StatusNotFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	res, page := get(t, client, srv.URL+"/schemashift/")
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	token := between(page, `name="csrf" value="`, `"`)
	require.Len(t, token, 64)
	action, err := url.Parse(srv.URL + "/schemashift/action")
	require.NoError(t, err)
	for _, tc := range []struct{ from, kind, page, phase string }{
		{"", "advance", "/schemashift/", "expanded"},
		{"migration", "rollback", "/schemashift/migrations/" + url.PathEscape(hostile), "planned"},
	} {
		form := url.Values{"action": {tc.kind}, "migration": {hostile}, "csrf": {token}, "from": {tc.from}}
		req, err := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusSeeOther, res.StatusCode, tc.from)
		loc, err := url.Parse(res.Header.Get("Location"))
		require.NoError(t, err, tc.from)
		back := action.ResolveReference(loc)
		assert.Equal(t, tc.page, back.EscapedPath(), "from %q: Location %s", tc.from, loc)
		res, shown := get(t, client, back.String())
		require.Equal(t, http.StatusOK, res.StatusCode, "from %q: %s", tc.from, shown)
		msg := between(shown, `<p class="note" id="message">`, "</p>")
		assert.Equal(t, html.EscapeString(tc.kind+" "+hostile+": done"), msg, "from %q: the message is shown", tc.from)
		st, err := c.Check(t.Context(), hostile)
		require.NoError(t, err)
		assert.Equal(t, tc.phase, st.From.String(), "the %s was made", tc.kind)
	}
}
