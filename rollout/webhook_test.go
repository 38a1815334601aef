package rollout_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
)

// delivery is one request a receiver got.
type delivery struct {
	body      []byte
	signature string
	id        string
}

// receiver answers each request with the next of codes (200 once they
// are spent), handing each request to got.
func receiver(t *testing.T, codes ...int) (*httptest.Server, chan delivery) {
	t.Helper()
	got := make(chan delivery, 16)
	codeCh := make(chan int, len(codes))
	for _, c := range codes {
		codeCh <- c
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{body: body, signature: r.Header.Get(rollout.SignatureHeader), id: r.Header.Get(rollout.NoticeIDHeader)}
		code := http.StatusOK
		select {
		case code = <-codeCh:
		default:
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

var signedAt = time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)

func newWebhook(t *testing.T, url string, opts ...rollout.WebhookOption) *rollout.Webhook {
	t.Helper()
	opts = append([]rollout.WebhookOption{rollout.WithWebhookClock(fixedClock(signedAt)), rollout.WithWebhookRetry(5, time.Microsecond, time.Millisecond)}, opts...)
	w, err := rollout.NewWebhook(url, "s3cret", opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close(context.Background()) }) // idempotent: a test's own Close comes first
	return w
}

var hostileNotice = rollout.Notice{ID: "id-1", Kind: rollout.NoticeTransition, Migration: "m/<b>\"x\"\nforged", From: ledger.Shadow, To: ledger.Live,
	Version: 7, Actor: "alice", Reason: "</script>", At: signedAt}

// A receiver gets the notice as JSON, with its id, signed: the signature
// verifies with the secret at the receiver's time; a body changed by one
// byte, another secret, a stale or future time (a replay) and a
// malformed header do not.
func TestWebhookSignsTheBody(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t)
	w := newWebhook(t, srv.URL)
	w.Notify(t.Context(), hostileNotice)
	d := <-got
	var n rollout.Notice
	require.NoError(t, json.Unmarshal(d.body, &n))
	assert.Equal(t, hostileNotice, n)
	assert.Equal(t, "id-1", d.id)
	require.NoError(t, rollout.VerifyWebhook("s3cret", d.signature, d.body, signedAt.Add(time.Minute), 5*time.Minute))

	tampered := append([]byte(nil), d.body...)
	tampered[len(tampered)-2] ^= 1
	assert.ErrorIs(t, rollout.VerifyWebhook("s3cret", d.signature, tampered, signedAt, 5*time.Minute), rollout.ErrBadSignature)
	assert.ErrorIs(t, rollout.VerifyWebhook("other", d.signature, d.body, signedAt, 5*time.Minute), rollout.ErrBadSignature)
	assert.ErrorIs(t, rollout.VerifyWebhook("s3cret", d.signature, d.body, signedAt.Add(6*time.Minute), 5*time.Minute), rollout.ErrStaleSignature)
	assert.ErrorIs(t, rollout.VerifyWebhook("s3cret", d.signature, d.body, signedAt.Add(-6*time.Minute), 5*time.Minute), rollout.ErrStaleSignature)
	for _, h := range []string{"", "t=,v1=", "v1=00", "t=1", "t=abc,v1=00", d.signature[:len(d.signature)-2]} {
		assert.ErrorIs(t, rollout.VerifyWebhook("s3cret", h, d.body, signedAt, 5*time.Minute), rollout.ErrBadSignature, "header %q", h)
	}
	require.NoError(t, w.Close(t.Context()))
	assert.Equal(t, rollout.WebhookStats{Delivered: 1}, w.Stats())
}

// A 5xx is retried: a 500, then a 503, then 200 delivers the notice
// once, the same body and id each time.
func TestWebhookRetriesAServerError(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, 500, 503)
	w := newWebhook(t, srv.URL)
	w.Notify(t.Context(), hostileNotice)
	a, b, c := <-got, <-got, <-got
	assert.Equal(t, a.body, b.body)
	assert.Equal(t, a.body, c.body)
	assert.Equal(t, "id-1", c.id)
	require.NoError(t, w.Close(t.Context()))
	assert.Empty(t, got, "delivered once")
	assert.Equal(t, rollout.WebhookStats{Delivered: 1, Retries: 2}, w.Stats())
}

// A 4xx is the receiver's no: not retried; the next notice goes on.
func TestWebhookDoesNotRetryAClientError(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, 400)
	w := newWebhook(t, srv.URL)
	w.Notify(t.Context(), hostileNotice)
	next := hostileNotice
	next.ID = "id-2"
	w.Notify(t.Context(), next)
	assert.Equal(t, "id-1", (<-got).id)
	assert.Equal(t, "id-2", (<-got).id, "the second notice, not a retry of the first")
	require.NoError(t, w.Close(t.Context()))
	assert.Equal(t, rollout.WebhookStats{Delivered: 1, Failed: 1}, w.Stats())
}

// The queue is bounded: while the receiver holds the first delivery,
// notices past the queue are dropped and counted; Close delivers what is
// queued.
func TestWebhookQueueDropsWhenFull(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	entered := make(chan string, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r.Header.Get(rollout.NoticeIDHeader)
		<-hold
	}))
	t.Cleanup(srv.Close)
	w := newWebhook(t, srv.URL, rollout.WithWebhookQueue(2))
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		n := hostileNotice
		n.ID = id
		w.Notify(t.Context(), n)
		if id == "a" {
			assert.Equal(t, "a", <-entered) // taken off the queue, held by the receiver
		}
	}
	assert.Equal(t, int64(2), w.Stats().Dropped, "b and c queued, d and e dropped")
	close(hold)
	require.NoError(t, w.Close(t.Context()))
	assert.Equal(t, "b", <-entered)
	assert.Equal(t, "c", <-entered)
	assert.Equal(t, rollout.WebhookStats{Delivered: 3, Dropped: 2}, w.Stats())
	w.Notify(t.Context(), hostileNotice)
	assert.Equal(t, int64(3), w.Stats().Dropped, "after Close, a notice is dropped")
	require.NoError(t, w.Close(t.Context()), "Close again is a no-op")
}

// Close's deadline cuts off a receiver that never answers: the notices
// left are counted undelivered, Close says so, and the goroutine ends
// (goleak would see it).
func TestWebhookCloseHasADeadline(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // read to its end: only then does the server watch the connection, and end r's context when it closes
		entered <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	w := newWebhook(t, srv.URL)
	w.Notify(t.Context(), hostileNotice)
	w.Notify(t.Context(), hostileNotice)
	<-entered
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the deadline has passed
	require.ErrorIs(t, w.Close(ctx), context.Canceled)
	assert.Equal(t, int64(2), w.Stats().Undelivered)
	require.ErrorIs(t, w.Close(t.Context()), context.Canceled, "Close again returns the first's error")
}

// NewWebhook refuses what it cannot deliver to or sign with.
func TestNewWebhookRefuses(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		url, secret string
		opt         rollout.WebhookOption
	}{
		"no scheme":    {"example.com/x", "s", nil},
		"ftp":          {"ftp://example.com/x", "s", nil},
		"no secret":    {"http://example.com", "", nil},
		"nil client":   {"http://example.com", "s", rollout.WithWebhookClient(nil)},
		"zero queue":   {"http://example.com", "s", rollout.WithWebhookQueue(0)},
		"no attempts":  {"http://example.com", "s", rollout.WithWebhookRetry(0, time.Second, time.Second)},
		"limit < base": {"http://example.com", "s", rollout.WithWebhookRetry(3, time.Second, time.Millisecond)},
		"nil clock":    {"http://example.com", "s", rollout.WithWebhookClock(nil)},
	} {
		opts := []rollout.WebhookOption{}
		if c.opt != nil {
			opts = append(opts, c.opt)
		}
		_, err := rollout.NewWebhook(c.url, c.secret, opts...)
		assert.ErrorIs(t, err, rollout.ErrInvalidArgument, name)
	}
}

// A coordinator's notices reach a webhook: the advance's notice arrives
// signed, after the commit.
func TestWebhookAsNotifier(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t)
	w := newWebhook(t, srv.URL)
	db := dbtest.SQLite(t)
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{noticePlan()}, rollout.WithNotifier(w))
	require.NoError(t, err)
	_, err = c.Advance(t.Context(), rollout.Request{Migration: noticePlan().Migration, Actor: "a"})
	require.NoError(t, err)
	d := <-got
	require.NoError(t, rollout.VerifyWebhook("s3cret", d.signature, d.body, signedAt, time.Minute))
	var n rollout.Notice
	require.NoError(t, json.Unmarshal(d.body, &n))
	assert.Equal(t, rollout.NoticeTransition, n.Kind)
	assert.Equal(t, ledger.Expanded, n.To)
	require.NoError(t, c.FlushNotices(t.Context()))
	require.NoError(t, w.Close(t.Context()))
}
