package board

import (
	"fmt"
	"net/http"
	"time"
)

// keepAlive is how long a stream stays silent at most: a comment then
// tells proxies the connection is alive, and the handler that the page is
// still there.
const keepAlive = 15 * time.Second

// events streams server-sent events to an open page: "change", with the
// fingerprint of the board's state (see fingerprint), whenever that state
// differs from the one the page was rendered from (?since=) or last told.
// The handler owns its ticker: it reads the board every poll interval and
// stops when the page goes away, the request's context ends, or the board
// is closed.
func (b *Board) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	select {
	case <-b.closed:
		http.Error(w, "the board is closed", http.StatusServiceUnavailable)
		return
	default:
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The stream outlives any write deadline the server sets.
	_ = rc.SetWriteDeadline(time.Time{}) // a server with no deadline support has none to lift
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", b.poll.Milliseconds()*2); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	last := r.URL.Query().Get("since")
	quiet := time.Now()
	tick := time.NewTicker(b.poll)
	defer tick.Stop()
	ctx := r.Context()
	for {
		snap, err := b.Snapshot(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			_, err = fmt.Fprintf(w, "event: failure\ndata: %s\n\n", oneLine(err.Error()))
		default:
			if fp := fingerprint(snap); fp != last {
				last = fp
				_, err = fmt.Fprintf(w, "event: change\nid: %s\ndata: %s\n\n", fp, fp)
			} else if time.Since(quiet) >= keepAlive {
				_, err = fmt.Fprint(w, ": still here\n\n")
			} else {
				break
			}
			quiet = time.Now()
		}
		if err != nil || rc.Flush() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-b.closed:
			return
		case <-tick.C:
		}
	}
}

// oneLine keeps an event's data on its one data: line.
func oneLine(s string) string {
	out := []rune(s)
	for i, c := range out {
		if c == '\n' || c == '\r' {
			out[i] = ' '
		}
	}
	return string(out)
}
