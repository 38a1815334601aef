package dialect

import "time"

// SetRenewEvery sets how often a SQLite lock's lease is renewed, and
// returns a func that restores it.
func SetRenewEvery(d time.Duration) (restore func()) {
	old := renewEvery.Swap(int64(d))
	return func() { renewEvery.Store(old) }
}
