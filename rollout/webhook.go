package rollout

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schemashift/schemashift/internal/backoff"
)

// Headers of a webhook's request.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex>": the HMAC-SHA256,
	// keyed by the webhook's secret, of the time, a dot and the body.
	SignatureHeader = "Schemashift-Signature"
	// NoticeIDHeader carries the notice's [Notice.ID], for a receiver to
	// deduplicate deliveries on (a retry after a lost answer delivers
	// twice).
	NoticeIDHeader = "Schemashift-Notice-Id"
)

// Errors of [VerifyWebhook].
var (
	// ErrBadSignature: the signature header is missing, malformed, or
	// does not sign this body with this secret.
	ErrBadSignature = errors.New("webhook signature does not verify")
	// ErrStaleSignature: the signature is of a time too far from the
	// receiver's (a replay of an old delivery, or clocks apart).
	ErrStaleSignature = errors.New("webhook signature is stale")
)

// sign is the signature header of body at t.
func sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhook checks, for a receiver, that header (the request's
// [SignatureHeader]) signs body with secret, at a time within tolerance
// of now (the receiver's clock): [ErrBadSignature] for a signature that
// does not, [ErrStaleSignature] for one too old or too far ahead (a
// replay). The comparison takes the same time whatever the signature.
func VerifyWebhook(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
		case k == "t":
			ts = v
		case k == "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: header %q is not t=…,v1=…", ErrBadSignature, header)
	}
	want := mac([]byte(secret), ts, body)
	ok := false
	for _, s := range sigs {
		ok = hmac.Equal(s, want) || ok
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %v from now, %v allowed", ErrStaleSignature, d.Round(time.Second), tolerance)
	}
	return nil
}

// Webhook is a [Notifier] that POSTs each notice, as JSON, to a URL,
// signed ([SignatureHeader], checked by [VerifyWebhook]). Notify only
// queues: one goroutine of the Webhook delivers, in order, retrying a
// delivery that failed with a 5xx, a 429, a timeout or a lost
// connection, after a jittered backoff, and giving up on a 4xx (the
// receiver said no; again would be no). The queue is bounded: past it a
// notice is dropped and counted ([Webhook.Stats]).
//
// It is safe for concurrent use. Close it ([Webhook.Close]): that drains
// the queue, for as long as its context allows, and stops the goroutine.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
	size   int
	tries  int
	base   time.Duration
	limit  time.Duration

	mu     sync.Mutex
	queue  []Notice
	wake   chan struct{} // a notice queued, or Close began
	closed bool
	stats  WebhookStats

	stop     context.CancelFunc // ends the delivery in progress
	ctx      context.Context
	done     chan struct{}
	closeErr error
	once     sync.Once
}

// WebhookStats counts what a [Webhook] did. It is a value.
type WebhookStats struct {
	// Delivered notices got a 2xx.
	Delivered int64
	// Retries are attempts after the first.
	Retries int64
	// Failed notices were given up on: a 4xx, or the attempts spent.
	Failed int64
	// Dropped notices found the queue full, or came after Close.
	Dropped int64
	// Undelivered notices were still queued when Close's context ended.
	Undelivered int64
}

// WebhookOption configures a [Webhook] when it is made.
type WebhookOption func(*Webhook) error

// WithWebhookClient sets the HTTP client (default: one with a 10s
// timeout).
func WithWebhookClient(c *http.Client) WebhookOption {
	return func(w *Webhook) error {
		if c == nil {
			return fmt.Errorf("%w: http client is nil", ErrInvalidArgument)
		}
		w.client = c
		return nil
	}
}

// WithWebhookClock sets the clock a signature's time is read from
// (default time.Now).
func WithWebhookClock(now func() time.Time) WebhookOption {
	return func(w *Webhook) error {
		if now == nil {
			return fmt.Errorf("%w: clock is nil", ErrInvalidArgument)
		}
		w.now = now
		return nil
	}
}

// WithWebhookQueue sets how many notices wait for delivery before the
// next is dropped (default 1024).
func WithWebhookQueue(size int) WebhookOption {
	return func(w *Webhook) error {
		if size <= 0 {
			return fmt.Errorf("%w: webhook queue %d is not positive", ErrInvalidArgument, size)
		}
		w.size = size
		return nil
	}
}

// WithWebhookRetry sets how many attempts a notice gets (default 8) and
// the backoff between them: base doubled at each retry, at most limit,
// jittered (defaults 500ms and 1m).
func WithWebhookRetry(attempts int, base, limit time.Duration) WebhookOption {
	return func(w *Webhook) error {
		switch {
		case attempts <= 0:
			return fmt.Errorf("%w: %d attempts", ErrInvalidArgument, attempts)
		case base < 0 || limit < base:
			return fmt.Errorf("%w: backoff %v to %v", ErrInvalidArgument, base, limit)
		}
		w.tries, w.base, w.limit = attempts, base, limit
		return nil
	}
}

// NewWebhook makes a webhook that delivers to target (http or https),
// signing with secret (not empty), and starts its delivery goroutine.
func NewWebhook(target, secret string, opts ...WebhookOption) (*Webhook, error) {
	u, err := url.Parse(target)
	switch {
	case err != nil:
		return nil, fmt.Errorf("new webhook: %w: %w", ErrInvalidArgument, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("new webhook: %w: %q is not an http(s) URL", ErrInvalidArgument, target)
	case secret == "":
		return nil, fmt.Errorf("new webhook: %w: the secret is empty", ErrInvalidArgument)
	}
	w := &Webhook{url: target, secret: []byte(secret), client: &http.Client{Timeout: 10 * time.Second}, now: time.Now,
		size: 1024, tries: 8, base: 500 * time.Millisecond, limit: time.Minute, wake: make(chan struct{}, 1), done: make(chan struct{})}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("new webhook: %w: option %d is nil", ErrInvalidArgument, i+1)
		}
		if err := o(w); err != nil {
			return nil, fmt.Errorf("new webhook: %w", err)
		}
	}
	w.ctx, w.stop = context.WithCancel(context.Background())
	go w.run()
	return w, nil
}

// Notify queues n for delivery; it never blocks. A notice that finds the
// queue full, or the webhook closed, is dropped and counted.
func (w *Webhook) Notify(_ context.Context, n Notice) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.queue) >= w.size {
		w.stats.Dropped++
		return
	}
	w.queue = append(w.queue, n)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stats returns what the webhook has done so far.
func (w *Webhook) Stats() WebhookStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// run delivers the queue until Close, and then what is left.
func (w *Webhook) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-w.wake:
			case <-w.ctx.Done():
			}
			continue
		}
		if w.ctx.Err() != nil { // Close's deadline passed: what is left stays undelivered
			w.stats.Undelivered += int64(len(w.queue))
			w.queue = nil
			w.mu.Unlock()
			return
		}
		n := w.queue[0]
		w.queue[0] = Notice{}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		w.deliver(n)
	}
}

// deliver sends n until it is delivered, refused with a 4xx, the
// attempts are spent or Close's deadline passes.
func (w *Webhook) deliver(n Notice) {
	body, err := json.Marshal(n)
	if err != nil { // a Notice is plain data: cannot fail
		w.count(func(s *WebhookStats) { s.Failed++ })
		return
	}
	for attempt := 0; ; attempt++ {
		retry := w.post(n.ID, body)
		if retry == nil {
			w.count(func(s *WebhookStats) { s.Delivered++ })
			return
		}
		if errors.Is(retry, errNoRetry) || attempt+1 >= w.tries {
			w.count(func(s *WebhookStats) { s.Failed++ })
			return
		}
		t := time.NewTimer(backoff.Wait(w.base, attempt, w.limit))
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			w.count(func(s *WebhookStats) { s.Undelivered++ })
			return
		}
		w.count(func(s *WebhookStats) { s.Retries++ })
	}
}

// errNoRetry marks a refusal that another attempt would not change.
var errNoRetry = errors.New("refused by the receiver")

// post makes one attempt: nil when delivered.
func (w *Webhook) post(id string, body []byte) error {
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", errNoRetry, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, sign(w.secret, w.now(), body))
	req.Header.Set(NoticeIDHeader, id)
	resp, err := w.client.Do(req)
	if err != nil {
		return err // a timeout, a connection lost or refused: worth another attempt
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // drained for the connection's reuse; what it says is not read
	_ = resp.Body.Close()                                        // read to its end already: nothing to report
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return fmt.Errorf("%w: %s", errNoRetry, resp.Status)
}

func (w *Webhook) count(f func(*WebhookStats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

// Close stops taking notices and delivers those queued, until ctx ends:
// then the delivery in progress is cut off, what is left is counted
// undelivered, and Close returns ctx's error. The goroutine has ended
// when Close returns. Close is idempotent: later calls return the
// first's error.
func (w *Webhook) Close(ctx context.Context) error {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
		select {
		case <-w.done:
		case <-ctx.Done():
			w.stop()
			<-w.done
			w.closeErr = fmt.Errorf("close webhook: %w", ctx.Err())
		}
		w.stop()
	})
	return w.closeErr
}

var _ Notifier = (*Webhook)(nil)
