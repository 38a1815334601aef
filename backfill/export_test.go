package backfill

// WithAfterClaim calls fn after each chunk is claimed and before its
// transaction begins: a worker stalled there still holds the chunk's lease
// but no lock, on either database.
func WithAfterClaim(fn func(seq int64)) Option {
	return func(o *options) error { o.afterClaim = fn; return nil }
}
