package board

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// keepAlive is how long a stream stays silent at most: a comment then
// tells proxies the connection is alive, and the handler that the page is
// still there.
const keepAlive = 15 * time.Second

// errStreamsFull is refused a stream beyond the board's cap
// ([WithMaxStreams]).
var errStreamsFull = errors.New("too many open event streams")

// reading is one poll of the board: the fingerprint of its state, or a
// failure to read it.
type reading struct {
	fingerprint string
	failed      bool
}

// subscriber is one open stream's mailbox: it holds the latest reading
// only, so a slow page never holds the poller up, and misses nothing it
// would act on (each reading supersedes the one before).
type subscriber struct{ c chan reading }

// offer replaces what s holds with r. The poller is its only sender, so
// after the drain there is room.
func (s *subscriber) offer(r reading) {
	select {
	case <-s.c:
	default:
	}
	s.c <- r
}

// poller reads the board for every open stream at once: one reading per
// poll interval, however many pages are open, fanned out to each. It runs
// while at least one stream is open: started by the first, stopped by the
// last to leave, or by [Board.Close]. The board writes it by hand: the
// standard library has no broadcast of a latest value.
type poller struct {
	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	latest  *reading      // the last reading of the running poller
	cancel  func()        // ends the running poller; nil when none runs
	done    chan struct{} // closed when the running poller has ended
	stopped bool          // the board is closed
}

// subscribe opens a stream's mailbox, starting the poller if none runs.
// The poller's context keeps ctx's values but not its end: it outlives
// the request that started it.
func (b *Board) subscribe(ctx context.Context) (*subscriber, error) {
	p := &b.streams
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil, errBoardClosed
	}
	if len(p.subs) >= b.maxStreams {
		return nil, errStreamsFull
	}
	s := &subscriber{c: make(chan reading, 1)}
	if p.subs == nil {
		p.subs = map[*subscriber]struct{}{}
	}
	p.subs[s] = struct{}{}
	if p.latest != nil {
		s.c <- *p.latest
	}
	if p.cancel == nil {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		p.cancel, p.done = cancel, make(chan struct{})
		go b.poll(pctx, p.done)
	}
	return s, nil
}

// unsubscribe closes a stream's mailbox; the last one out stops the
// poller and waits for it.
func (b *Board) unsubscribe(s *subscriber) {
	p := &b.streams
	p.mu.Lock()
	delete(p.subs, s)
	var done chan struct{}
	if len(p.subs) == 0 && p.cancel != nil {
		done = p.halt()
	}
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// stop ends the poller for good ([Board.Close]) and waits for it.
func (p *poller) stop() {
	p.mu.Lock()
	p.stopped = true
	var done chan struct{}
	if p.cancel != nil {
		done = p.halt()
	}
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// halt cancels the running poller and forgets it; p.mu is held.
func (p *poller) halt() chan struct{} {
	done := p.done
	p.cancel()
	p.cancel, p.done, p.latest = nil, nil, nil
	return done
}

// poll reads the board at once, then every poll interval, until ctx
// ends, and hands each reading to every open stream. A failure is logged
// (when the board has a logger) when it begins and when it ends; the
// streams hear only that the board is unavailable.
func (b *Board) poll(ctx context.Context, done chan struct{}) {
	defer close(done)
	tick, stop := b.ticker(b.interval)
	defer stop()
	failing := false
	for {
		snap, err := b.Snapshot(ctx)
		if ctx.Err() != nil {
			return
		}
		var r reading
		if err != nil {
			r.failed = true
			if !failing && b.log != nil {
				b.log.ErrorContext(ctx, "status board: read the board's state", "error", err)
			}
		} else {
			r.fingerprint = fingerprint(snap)
			if failing && b.log != nil {
				b.log.InfoContext(ctx, "status board: read the board's state again")
			}
		}
		failing = r.failed
		if !b.publish(ctx, r) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// publish hands r to every open stream, unless the poller was stopped
// meanwhile (it then reports false).
func (b *Board) publish(ctx context.Context, r reading) bool {
	p := &b.streams
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	p.latest = &r
	for s := range p.subs {
		s.offer(r)
	}
	return true
}

// realTicker is the board's ticker unless a test injects one.
func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// events streams server-sent events to an open page: "change", with the
// fingerprint of the board's state (see fingerprint), whenever that state
// differs from the one the page was rendered from (?since=) or last told;
// "failure", with the data "unavailable" only (the error itself goes to
// the board's logger, [WithLogger]), when the board could not be read.
// The readings are the board's poller's, shared by every stream; beyond
// [WithMaxStreams] open streams, a new one is refused (503, with
// Retry-After). A stream ends when the page goes away, the request's
// context ends, or the board is closed.
func (b *Board) events(w http.ResponseWriter, r *http.Request) {
	s, err := b.subscribe(r.Context())
	switch {
	case errors.Is(err, errBoardClosed):
		http.Error(w, "the board is closed", http.StatusServiceUnavailable)
		return
	case errors.Is(err, errStreamsFull):
		w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, 2*b.interval).Seconds())))
		http.Error(w, "too many open event streams: retry later", http.StatusServiceUnavailable)
		return
	}
	defer b.unsubscribe(s)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The stream outlives any write deadline the server sets.
	_ = rc.SetWriteDeadline(time.Time{}) // a server with no deadline support has none to lift
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", b.interval.Milliseconds()*2); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	last := r.URL.Query().Get("since")
	failed := false
	quiet := time.Now()
	ctx := r.Context()
	for {
		var rd reading
		select {
		case <-ctx.Done():
			return
		case <-b.closed:
			return
		case rd = <-s.c:
		}
		switch {
		case rd.failed && !failed:
			_, err = fmt.Fprint(w, "event: failure\ndata: unavailable\n\n")
		case !rd.failed && (rd.fingerprint != last || failed):
			// After a failure the page is told even of the state it has,
			// so that it says it is live again.
			last = rd.fingerprint
			_, err = fmt.Fprintf(w, "event: change\nid: %s\ndata: %s\n\n", last, last)
		case time.Since(quiet) >= keepAlive:
			_, err = fmt.Fprint(w, ": still here\n\n")
		default:
			continue
		}
		failed = rd.failed
		quiet = time.Now()
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}
