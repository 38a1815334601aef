package dualwrite_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwritetest"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
	"github.com/schemashift/schemashift/internal/dbtest"
)

type contact struct {
	Email string `schemashift:"sensitive"`
	City  string
}

type account struct {
	Name     string
	Contact  *contact
	Others   []contact
	ByKey    map[string]contact
	Tokens   map[string]int `schemashift:"sensitive"`
	Password string
}

// Sensitive values stay out of reports wherever the difference is: a
// pointer present on one side only, an extra slice element, a map entry on
// one side only, a map key under a sensitive field, a whole value compared
// by an equality function.
func TestRedactionCoversWholeSubtrees(t *testing.T) {
	t.Parallel()
	old := account{Name: "a", Tokens: map[string]int{"sk_live_SECRET1": 1}}
	new := account{Name: "a",
		Contact: &contact{Email: "leak1@x.com", City: "Oslo"},
		Others:  []contact{{Email: "leak2@x.com"}},
		ByKey:   map[string]contact{"k": {Email: "leak3@x.com"}},
		Tokens:  map[string]int{"sk_live_SECRET2": 1}, Password: "hunter2"}
	c := compare(t, old, new, dualwrite.WithSensitiveFields("Password"))
	require.False(t, c.Match)
	var report strings.Builder
	for _, d := range c.Diffs {
		report.WriteString(d.String() + "\n")
	}
	for _, secret := range []string{"leak1", "leak2", "leak3", "SECRET1", "SECRET2", "hunter2"} {
		assert.NotContains(t, report.String(), secret)
	}
	assert.Contains(t, report.String(), `City:"Oslo"`, "what is not sensitive is still shown")

	eq := dualwrite.EqualFunc(func(a, b account) bool { return a.Password == b.Password })
	c = compare(t, old, new, dualwrite.WithComparator(eq), dualwrite.WithSensitiveFields("Password"))
	require.Len(t, c.Diffs, 1)
	assert.NotContains(t, c.Diffs[0].String(), "hunter2")
	assert.Contains(t, c.Diffs[0].Old, `Name:"a"`)

	// A custom comparator's paths are redacted by tag too.
	custom := func(a, b account) []dualwrite.Diff {
		return []dualwrite.Diff{{Path: "Contact.Email", Old: "x", New: b.Contact.Email}}
	}
	c = compare(t, old, new, dualwrite.WithComparator(custom))
	assert.Equal(t, []dualwrite.Diff{{Path: "Contact.Email", Old: dualwrite.Redacted, New: dualwrite.Redacted}}, c.Diffs)
}

type node struct {
	Name     string
	Parent   *node
	Children []*node
	First    *node
}

func graph(n int, label string) *node {
	root := &node{Name: "root"}
	for i := range n {
		child := &node{Name: label, Parent: root, First: root}
		if i > 0 {
			child.First = root.Children[0]
		}
		root.Children = append(root.Children, child)
	}
	return root
}

// Graphs with back pointers and shared nodes are compared in linear time.
func TestCyclicValuesCompareQuickly(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := compare(t, graph(200, "line"), graph(200, "line"))
	assert.True(t, c.Match)
	c = compare(t, graph(200, "line"), graph(200, "LINE"))
	assert.False(t, c.Match)
	assert.Len(t, c.Diffs, 33, "32 listed and a count of the rest")
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestReportValuesAreBounded(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 1<<20)
	c := compare(t, big, big+"y")
	require.Len(t, c.Diffs, 1)
	assert.Less(t, len(c.Diffs[0].Old)+len(c.Diffs[0].New), 1000)
	assert.Contains(t, c.Diffs[0].New, "bytes)")
}

type stamped struct {
	at time.Time
}

// An unexported time.Time compares by instant, as an exported one does.
func TestUnexportedTimeComparesByInstant(t *testing.T) {
	t.Parallel()
	now := time.Now()
	assert.True(t, compare(t, stamped{now}, stamped{now.Round(0)}).Match, "monotonic reading stripped")
	assert.False(t, compare(t, stamped{now}, stamped{now.Add(time.Second)}).Match)
}

// A caller that changes the result it got does not race with the
// comparison, which sees the result as returned (run under -race).
func TestCallerMayChangeItsResult(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	rec := &dualwritetest.Recorder{}
	changed := make(chan struct{})
	r, err := dualwrite.NewReader(flag,
		func(context.Context, []string) (*user, error) { return &user{GivenName: "Ada"}, nil },
		func(ctx context.Context, in []string) (*user, error) {
			<-changed // the shadow read and the comparison come after the caller's changes
			return &user{GivenName: in[0]}, nil
		},
		dualwrite.WithObserver(rec), dualwrite.WithShadowTimeout(time.Hour)) // no wait here may meet a timeout
	require.NoError(t, err)
	defer r.Close()
	in := []string{"Ada"}
	got, err := r.Read(t.Context(), in)
	require.NoError(t, err)
	got.GivenName = "changed by the caller"
	in[0] = "changed too"
	close(changed)
	r.Wait()
	cmp := rec.Comparisons()
	require.Len(t, cmp, 1)
	assert.True(t, cmp[0].Match, "%v", cmp[0].Diffs)
}

type panickingObserver struct{ dualwrite.NopObserver }

func (panickingObserver) ObserveComparison(context.Context, dualwrite.Comparison) {
	panic("observer bug")
}
func (panickingObserver) ObserveCall(_ context.Context, c dualwrite.Call) {
	if c.Role == dualwrite.ShadowRole {
		panic("observer bug")
	}
}

// An observer that panics on a shadow goroutine does not crash the process.
func TestPanickingObserverOnShadowPath(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Live)
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (int, error) { return 1, nil },
		func(context.Context, int) (int, error) { return 2, nil },
		dualwrite.WithObserver(panickingObserver{}))
	require.NoError(t, err)
	got, err := r.Read(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, 2, got)
	r.Wait()
	require.NoError(t, r.Close())
}

// An authoritative read slower than the shadow timeout is still compared:
// the timeout bounds the shadow read, not the wait for the caller's result.
//
// The authoritative read returns once the shadow read's timeout has
// fired: the shadow read, done at once, holds its context (which nothing
// but the timeout ends while it waits for the authoritative result) for
// the authoritative read to wait on. The timeout is real time, so a
// loaded machine may start the shadow read after it: that try shows it
// (the shadow call's error is the timeout) and proves nothing, and the
// next one is made.
func TestSlowAuthoritativeReadIsStillCompared(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	for try := 1; ; try++ {
		require.LessOrEqual(t, try, 20, "the shadow read never ran within its timeout")
		rec := &dualwritetest.Recorder{}
		shadowCtx := make(chan context.Context, 1)
		r, err := dualwrite.NewReader(flag,
			func(context.Context, int) (int, error) { ctx := <-shadowCtx; <-ctx.Done(); return 1, nil },
			func(ctx context.Context, _ int) (int, error) { shadowCtx <- ctx; return 2, nil },
			dualwrite.WithObserver(rec), dualwrite.WithShadowTimeout(50*time.Millisecond), dualwrite.WithRecheck(false))
		require.NoError(t, err)
		_, err = r.Read(t.Context(), 0)
		require.NoError(t, err)
		require.NoError(t, r.Close()) // after the shadow read, which Close waits for
		shadows := rec.CallsBy(dualwrite.ShadowRole)
		require.Len(t, shadows, 1)
		if errors.Is(shadows[0].Err, dualwrite.ErrShadowTimeout) {
			continue
		}
		require.NoError(t, shadows[0].Err)
		require.Len(t, rec.Mismatches(), 1, "the shadow read's result, in time, is compared with the late authoritative one")
		return
	}
}

// A panic inside a dual write rolls the transaction back: no connection or
// row lock is left behind.
func TestTxWriterPanicRollsBack(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testTxWriterPanicRollsBack)
}

func testTxWriterPanicRollsBack(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	usersDB(t, db)
	db.SetMaxOpenConns(1)
	flag, _ := flagstest.Flag(t, migration, flags.DualWrite)
	w, err := dualwrite.NewTxWriter(db, flag, writeOld,
		func(context.Context, sqlx.ExtContext, name) error { panic("new path bug") })
	require.NoError(t, err)
	assert.Panics(t, func() { _ = w.Write(t.Context(), name{ID: 1, Given: "Ada", Family: "Lovelace"}) })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var n int
	require.NoError(t, db.GetContext(ctx, &n, `SELECT count(*) FROM users`), "the only connection is free again")
	assert.Zero(t, n, "the old write was rolled back")
}

// A repair is recorded even when the caller's context ends as the call
// fails: the authoritative write already happened.
func TestRepairOutlivesCallerContext(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.DualWrite)
	ctx, cancel := context.WithCancel(t.Context())
	var recorded atomic.Bool
	w, err := dualwrite.NewWriter(flag,
		func(context.Context, int) error { return nil },
		func(context.Context, int) error { cancel(); return errors.New("new store down") },
		dualwrite.WithRepairQueue(dualwrite.RepairQueueFunc(func(ctx context.Context, _ dualwrite.Repair) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			recorded.Store(true)
			return nil
		})))
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, 1))
	assert.True(t, recorded.Load())
}
