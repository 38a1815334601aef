package backfill

import (
	"context"
	"slices"
)

// lookahead finds, on a connection of its own while a chunk runs, the
// boundaries of the chunk after it: the keys some sizes past the chunk's
// upper key (see lookSizes: its own size, and those the chunk size may
// grow to after it). The claim that follows takes the largest that fits
// instead of walking the key index itself, under the job's lock, between
// two chunks: with one worker, the walk (an index scan of a chunk's rows)
// then overlaps the chunk's statement rather than add to it.
type lookahead struct {
	done    chan struct{}
	guesses []boundaryGuess
	// short is set when a walk found no boundary: fewer than short.size
	// rows were past short.lo (its hi is nil). The claim then counts the
	// tail first rather than walk it once to find no boundary and again
	// to count it.
	short *boundaryGuess
}

// boundaryGuess is a boundary found outside the claim's transaction: hi
// is the key size rows past lo.
type boundaryGuess struct {
	lo, hi Key
	size   int
}

// lookAhead starts looking for the boundaries sizes (ascending) rows past
// lo, each walk going on from the last key found.
func (b *Backfill) lookAhead(ctx context.Context, lo Key, sizes []int) *lookahead {
	l := &lookahead{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		from, walked := lo, 0
		for _, n := range sizes {
			hi, err := b.plan.boundary(ctx, b.db, from, n-walked)
			b.counted(1, err) // the walk, as the database counts it
			if err == nil && hi == nil {
				l.short = &boundaryGuess{lo: lo, size: n}
			}
			if err != nil || hi == nil {
				return // the claim walks (or counts the tail) itself
			}
			l.guesses = append(l.guesses, boundaryGuess{lo: lo, hi: hi, size: n})
			from, walked = hi, n
		}
	}()
	return l
}

// wait waits for the look-ahead to end (none: at once).
func (l *lookahead) wait() {
	if l != nil {
		<-l.done
	}
}

// result waits for the look-ahead and returns the boundaries it found
// (none when it failed, found no boundary, or there was none) and, when a
// walk found none, the sign of the table's tail (see lookahead.short).
func (l *lookahead) result() ([]boundaryGuess, *boundaryGuess) {
	if l == nil {
		return nil, nil
	}
	<-l.done
	return l.guesses, l.short
}

// tailIn reports whether short says that fewer than size rows were past
// lo when the look-ahead walked them: the claim then counts them first,
// and walks for a boundary only when rows written since make size or
// more (see claim).
func (short *boundaryGuess) tailIn(lo Key, size int) bool {
	return short != nil && slices.Equal(short.lo, lo) && short.size <= size
}

// fits reports whether g can be the boundary of a chunk of size rows
// after lo, of at most most rows: found from the same frontier, no larger
// than most (a tenth over size as a rule: a size cut since, by a chunk
// that overran, is not undone by it; size itself under a rate, whose
// limiter let size rows go and no more) and no smaller than a tenth under
// size (a chunk smaller than its size would be timed as such, and the
// size would never be walked).
func (g *boundaryGuess) fits(lo Key, size, most int) bool {
	return g != nil && slices.Equal(g.lo, lo) && g.size <= most && g.size >= size-size/10
}

// pick is the largest of guesses that fits a chunk of size rows, and at
// most most, after lo, or nil.
func pick(guesses []boundaryGuess, lo Key, size, most int) *boundaryGuess {
	var best *boundaryGuess
	for i := range guesses {
		if g := &guesses[i]; g.fits(lo, size, most) && (best == nil || g.size > best.size) {
			best = g
		}
	}
	return best
}
