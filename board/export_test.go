package board

import "time"

// WithTicks drives the board's poller by c instead of its poll interval:
// it reads the board once when it starts, then once per value received.
// An unbuffered c makes a send return only once the reading before it is
// done and handed to the streams.
func WithTicks(c <-chan time.Time) Option {
	return func(b *Board) error {
		b.ticker = func(time.Duration) (<-chan time.Time, func()) { return c, func() {} }
		return nil
	}
}
