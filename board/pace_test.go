package board_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// markupSignal reads a steady foreground for the baseline, then fails
// with markup in its error, which the pace then quotes.
type markupSignal struct{ reads atomic.Int64 }

func (*markupSignal) Source() string { return backfill.SourceApplication }

func (s *markupSignal) Read(context.Context) (backfill.Foreground, error) {
	if s.reads.Add(1) > 2 {
		return backfill.Foreground{}, errors.New(`<script>alert("pace")</script> & 'x'`)
	}
	return backfill.Foreground{Latency: time.Millisecond, Throughput: 100, Ops: 100}, nil
}

// A backfill paced by a latency budget shows, in its row of the board
// and in the JSON, what it reads the foreground by and how its pace
// stands, escaped.
func TestBoardShowsTheBackfillsPace(t *testing.T) {
	t.Parallel()
	db := rollouttest.UsersDB(t, pgtest.DB(t))
	plan := rollouttest.UsersPlan(db)
	plan.Migration = hostile
	c, err := rollout.NewCoordinator(t.Context(), db, []rollout.Plan{plan})
	require.NoError(t, err)
	rollouttest.Forced(t, c, hostile, 3) // to backfill
	require.NoError(t, c.RunBackfills(t.Context(), hostile, backfill.WithChunkSize(50, 50, 50),
		backfill.WithLatencyBudget(backfill.LatencyBudget{P99: 1.5, Signal: &markupSignal{}, Baseline: time.Millisecond, Window: 5 * time.Millisecond})))
	b, err := board.New(c, allowAll())
	require.NoError(t, err)
	srv := newServer(t, b)

	res, page := get(t, http.DefaultClient, srv+"/migrations/"+url.PathEscape(hostile))
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	cell := between(page, `<td data-field="pace">`, "</td>")
	assert.True(t, strings.HasPrefix(cell, "application: duty "), cell)
	assert.NotContains(t, page, `<script>alert`)
	assert.Contains(t, cell, `signal error: &lt;script&gt;alert(&#34;pace&#34;)&lt;/script&gt; &amp; &#39;x&#39;`)

	res, body := get(t, http.DefaultClient, srv+"/api/status")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	var doc struct {
		Migrations []struct {
			Backfills []board.Backfill `json:"backfills"`
		} `json:"migrations"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	require.Len(t, doc.Migrations, 1)
	bf := doc.Migrations[0].Backfills[0]
	assert.Equal(t, backfill.SourceApplication, bf.Foreground)
	assert.Contains(t, bf.Pace, `signal error: <script>alert("pace")</script>`)
}
