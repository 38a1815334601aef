package backfill

import "time"

// WithWindowWait calls fn with where the job stands each time a worker
// looks at the clock and finds it outside every run window, before it
// waits.
func WithWindowWait(fn func(text string)) Option {
	return func(o *options) error { o.windowWait = fn; return nil }
}

// WindowState is where t stands among ws: inside until the windows
// close, or outside until one opens.
func WindowState(ws []Window, t time.Time) (inside bool, until time.Time) {
	inside, until, _ = windowState(ws, t)
	return inside, until
}

// WindowText is what [Progress].Window says at t.
func WindowText(ws []Window, t time.Time) string {
	text, _, _ := windowText(ws, t)
	return text
}
