package backfill

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One worker on a steady table whose rows take target/13,000 each (a
// simulation of claim, look-ahead and adapt): the chunks reach the
// target's size. Before, once the size grew by less than 1.5× (here
// 9,600 → 13,000) the only guess was the last chunk's own row count,
// which "fitted" the new size from below, and every chunk walked 9,600
// rows forever while ChunkSize said 13,000.
func TestLookAheadReachesTheTargetSize(t *testing.T) {
	t.Parallel()
	o, err := newOptions([]Option{WithChunkSize(100, 10, 100_000), WithTargetChunkTime(time.Second), WithMaxLockHold(2 * time.Second)})
	require.NoError(t, err)
	b := &Backfill{opts: o, chunkSize: 100}
	perRow := time.Second / 13_000
	var guesses []boundaryGuess
	var walked []int
	lo := Key{"0"}
	for range 30 {
		size := b.size()
		rows := size // the claim walks size itself when no guess fits
		if g := pick(guesses, lo, size, size+size/10); g != nil {
			rows = g.size
		}
		walked = append(walked, rows)
		// The look-ahead started as the chunk is claimed, before adapt.
		guesses = nil
		for _, n := range b.lookSizes(rows) {
			guesses = append(guesses, boundaryGuess{lo: lo, hi: Key{"x"}, size: n})
		}
		b.adapt(int64(rows), time.Duration(rows)*perRow)
	}
	t.Logf("rows walked: %v, chunk size %d", walked, b.size())
	assert.GreaterOrEqual(t, walked[len(walked)-1], 13_000*9/10, "chunks reach the target's size: %v", walked)
}
