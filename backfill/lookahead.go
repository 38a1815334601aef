package backfill

import (
	"context"
	"slices"
)

// lookahead finds, on a connection of its own while a chunk runs, the
// boundary of the chunk after it: the key size rows past the chunk's
// upper key. The claim that follows takes it instead of walking the key
// index itself, under the job's lock, between two chunks: with one
// worker, the walk (an index scan of a chunk's rows) then overlaps the
// chunk's statement rather than add to it.
type lookahead struct {
	done  chan struct{}
	guess boundaryGuess
	err   error
}

// boundaryGuess is a boundary found outside the claim's transaction: hi
// is the key size rows past lo.
type boundaryGuess struct {
	lo, hi Key
	size   int
}

// lookAhead starts looking for the boundary size rows past lo.
func (b *Backfill) lookAhead(ctx context.Context, lo Key, size int) *lookahead {
	l := &lookahead{done: make(chan struct{}), guess: boundaryGuess{lo: lo, size: size}}
	go func() {
		defer close(l.done)
		l.guess.hi, l.err = b.plan.boundary(ctx, b.db, lo, size)
	}()
	return l
}

// wait waits for the look-ahead to end (none: at once).
func (l *lookahead) wait() {
	if l != nil {
		<-l.done
	}
}

// result waits for the look-ahead and returns what it found: nil when it
// failed, found no boundary (the table's tail: the claim counts it), or
// there was none.
func (l *lookahead) result() *boundaryGuess {
	if l == nil {
		return nil
	}
	<-l.done
	if l.err != nil || l.guess.hi == nil {
		return nil
	}
	return &l.guess
}

// fits reports whether g can be the boundary of a chunk of size rows
// after lo: found from the same frontier, and no larger than a tenth over
// size (a size cut since, by a chunk that overran, is not undone by it).
func (g *boundaryGuess) fits(lo Key, size int) bool {
	return g != nil && slices.Equal(g.lo, lo) && g.size <= size+size/10
}
