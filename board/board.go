package board

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/pgerr"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// Action is a change asked of the status board. It is a value.
type Action struct {
	Kind      string // advance, approve, rollback, rollback-to-off, pause, resume
	Migration string
	Job       string // for pause and resume
}

// Authorizer decides whether a request may perform an action, and under
// which actor name it is recorded. It must be safe for concurrent use.
type Authorizer interface {
	Authorize(r *http.Request, a Action) (actor string, err error)
}

// AuthorizerFunc adapts a function to an [Authorizer]; the function must
// be safe for concurrent use.
type AuthorizerFunc func(r *http.Request, a Action) (string, error)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(r *http.Request, a Action) (string, error) { return f(r, a) }

// Board is the status board: an http.Handler serving an HTML page (GET /)
// and its data as JSON (GET /api/status). It is read-only unless given an
// [Authorizer]; then POST /action advances, approves, rolls back, pauses and resumes,
// behind a CSRF token. It is safe for concurrent use.
type Board struct {
	c      *rollout.Coordinator
	auth   Authorizer
	audit  int
	window time.Duration
	mux    *http.ServeMux
	origin *http.CrossOriginProtection
	log    *slog.Logger // nil: nothing logged

	interval   time.Duration                                  // between the poller's readings
	ticker     func(time.Duration) (<-chan time.Time, func()) // the poller's ticks, and their stop
	maxStreams int
	streams    poller

	closeOnce sync.Once
	closed    chan struct{} // ends every event stream
}

// errBoardClosed refuses an event stream after [Board.Close].
var errBoardClosed = errors.New("the board is closed")

// Option configures a [Board] when it is made ([New]).
type Option func(*Board) error

// WithAuthorizer enables the board's actions for requests a allows.
func WithAuthorizer(a Authorizer) Option {
	return func(b *Board) error {
		if a == nil {
			return errors.New("authorizer is nil")
		}
		b.auth = a
		return nil
	}
}

// WithPollInterval sets how often the board reads the ledger, the
// heartbeats and the backfills for a change while at least one page's
// event stream is open (default 2s). It is one reading per interval for
// all the open streams together.
func WithPollInterval(d time.Duration) Option {
	return func(b *Board) error {
		if d <= 0 {
			return fmt.Errorf("poll interval %v is not positive", d)
		}
		b.interval = d
		return nil
	}
}

// WithMaxStreams caps the event streams open at once (default 64): GET
// /events beyond it is refused with 503 Service Unavailable and a
// Retry-After. The board's readings are shared by its streams, so the
// cap bounds connections held and goroutines, not database load.
func WithMaxStreams(n int) Option {
	return func(b *Board) error {
		if n <= 0 {
			return fmt.Errorf("max streams %d is not positive", n)
		}
		b.maxStreams = n
		return nil
	}
}

// WithLogger logs to l what the board's pages are not told: an event
// stream's viewers hear only that the board is unavailable when it
// cannot be read; l gets the error. Without it nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(b *Board) error {
		if l == nil {
			return errors.New("logger is nil")
		}
		b.log = l
		return nil
	}
}

// WithChartWindow sets how far back a migration's charts over time of
// the heartbeats go (default 6 hours): shadow consistency, and latency
// and error rate per instance. The page reads every sample of the window
// and merges them into its points, so its cost grows with the window:
// 6 hours of 20 instances beating every 10 s is 43,200 samples. The
// heartbeats keep their samples for a week unless told otherwise
// (fleet.WithSampleRetention).
func WithChartWindow(d time.Duration) Option {
	return func(b *Board) error {
		if d <= 0 {
			return fmt.Errorf("chart window %v is not positive", d)
		}
		b.window = d
		return nil
	}
}

// WithTrustedOrigin lets the board's actions be posted from origin
// ("https://ops.example.com"), a page of another origin, such as a proxy
// in front of the board that rewrites its Host.
func WithTrustedOrigin(origin string) Option {
	return func(b *Board) error { return b.origin.AddTrustedOrigin(origin) }
}

// New returns the status board of the coordinator's migrations.
func New(c *rollout.Coordinator, opts ...Option) (*Board, error) {
	if c == nil {
		return nil, errors.New("new board: coordinator is nil")
	}
	b := &Board{c: c, audit: 50, interval: 2 * time.Second, ticker: realTicker, maxStreams: 64, window: 6 * time.Hour, mux: http.NewServeMux(), origin: http.NewCrossOriginProtection(),
		closed: make(chan struct{})}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, fmt.Errorf("new board: %w", err)
		}
	}
	b.mux.HandleFunc("GET /{$}", b.page)
	b.mux.HandleFunc("GET /migrations/{migration}", b.migrationPage)
	b.mux.HandleFunc("GET /api/status", b.status)
	b.mux.HandleFunc("GET /events", b.events)
	b.mux.HandleFunc("POST /action", b.action)
	b.mux.HandleFunc("GET /runbook/{migration}", b.runbook)
	b.mux.HandleFunc("GET /api/dependencies", b.dependencies)
	b.mux.HandleFunc("GET /dependencies.svg", b.dependencies)
	b.mux.HandleFunc("GET /retrospective/{migration}", b.retrospective)
	return b, nil
}

func (b *Board) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }

// Close ends the event streams of the pages open now and the poller
// reading the board for them, and refuses new streams: an http.Server's
// Shutdown waits for every request, and a stream never ends by itself
// (register Close with the server's RegisterOnShutdown). The rest of the
// board goes on serving. Close is idempotent.
func (b *Board) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.streams.stop()
	})
	return nil
}

// Status is the board's JSON document. It is a value.
type Status struct {
	GeneratedAt time.Time      `json:"generated_at"`
	ReadOnly    bool           `json:"read_only"`
	Migrations  []Migration    `json:"migrations"`
	Audit       []ledger.Event `json:"audit"`
}

// Migration is one migration on the board. It is a value.
type Migration struct {
	ledger.Status
	Next        rollout.Readiness `json:"next"`
	Backfills   []Backfill        `json:"backfills"`
	Consistency fleet.Consistency `json:"consistency"`
	// Threshold and MinComparisons are the plan's for the gates to live
	// and rampdown; Below is set when at least one comparison was made and
	// Consistency.Ratio is under Threshold.
	Threshold      float64 `json:"consistency_threshold"`
	MinComparisons int64   `json:"min_comparisons"`
	Below          bool    `json:"consistency_below"`
	// Paths are the old and the new path's calls, errors and latency, over
	// every instance's heartbeats.
	Paths []Path      `json:"paths"`
	Fleet fleet.Fleet `json:"fleet"`
	// QueryPlans is the latest recorded plan of each hot query.
	QueryPlans []rollout.QueryPlan `json:"query_plans"`
	// Approvals are the owner, the policies and the approvals of the
	// next advance; nil for a plan that names none.
	Approvals *rollout.ApprovalState `json:"approvals,omitempty"`
	// Aggregates is the last comparison of the plan's aggregates an
	// advance made (nil: none).
	Aggregates *rollout.AggregateComparison `json:"aggregates,omitempty"`
	// Checks are the plan's milestone checks, each with its last run.
	Checks []CheckStatus `json:"checks"`
	// Sunset is the migration against its plan's sunset; nil for a plan
	// that sets none.
	Sunset *rollout.DeadlineState `json:"sunset,omitempty"`
	// Schedules are the last scheduled advances, latest first.
	Schedules []rollout.Schedule `json:"schedules,omitempty"`
}

// Path is what the fleet reported of one path (old or new) of a
// migration: calls, errors and latency quantiles (the upper bound of the
// histogram bucket holding each). It is a value.
type Path struct {
	Path      string        `json:"path"`
	Calls     int64         `json:"calls"`
	Errors    int64         `json:"errors"`
	ErrorRate float64       `json:"error_rate"`
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
}

// Backfill is one backfill job on the board. It is a value.
type Backfill struct {
	Job           string  `json:"job"`
	Status        string  `json:"status"`
	RowsDone      int64   `json:"rows_done"`
	TotalEstimate int64   `json:"total_estimate"`
	Rate          float64 `json:"rate"`
	ETASeconds    float64 `json:"eta_seconds"`
	ChunkSize     int     `json:"chunk_size"`
	Throttle      string  `json:"throttle"`
	// Foreground is what the job's latency budget reads the foreground
	// by, and Pace how its pace stands ("" without a budget): see
	// backfill.Progress.
	Foreground string `json:"foreground"`
	Pace       string `json:"pace"`
	// Window is where the job stands among its run windows ("" without
	// any): see backfill.Progress.
	Window    string `json:"window"`
	Verify    string `json:"verify"`
	Divergent int64  `json:"divergent"`
	// When Status is "stalled": the worker the job last had, and since
	// when it has had none alive.
	StalledWorker string     `json:"stalled_worker,omitempty"`
	StalledSince  *time.Time `json:"stalled_since,omitempty"`
}

// Snapshot reads everything the board shows, as it stands at one time of
// the coordinator's clock (GeneratedAt): gates, fleets, stalls and how
// long ago each was seen are judged then.
func (b *Board) Snapshot(ctx context.Context) (Status, error) {
	now := b.c.Now()
	db := b.c.DB()
	out := Status{GeneratedAt: now, ReadOnly: b.auth == nil, Migrations: []Migration{}}
	for _, name := range b.c.Migrations() {
		m, err := b.migration(ctx, name, now)
		if err != nil {
			return out, err
		}
		out.Migrations = append(out.Migrations, m)
	}
	var err error
	if out.Audit, err = ledger.Audit(ctx, db, "", b.audit); err != nil {
		return out, err
	}
	if out.Audit == nil {
		out.Audit = []ledger.Event{}
	}
	return out, nil
}

// migration reads one migration as the board shows it, at now.
func (b *Board) migration(ctx context.Context, name string, now time.Time) (Migration, error) {
	db := b.c.DB()
	plan, err := b.c.Plan(name)
	if err != nil {
		return Migration{}, err
	}
	row, err := ledger.Read(ctx, db, name)
	if err != nil {
		return Migration{}, err
	}
	m := Migration{Status: row.Status, Backfills: []Backfill{}, Threshold: plan.ShadowConsistency, MinComparisons: plan.MinComparisons}
	if m.Next, err = b.c.CheckAt(ctx, name, now); err != nil {
		return m, err
	}
	t, err := fleet.Sum(ctx, db, name)
	if err != nil {
		return m, err
	}
	m.Consistency = t.Since(row.Base) // since the current phase began
	m.Below = m.Consistency.Matched+m.Consistency.Mismatched > 0 && m.Consistency.Ratio < m.Threshold
	lat, err := fleet.Latencies(ctx, db, name)
	if err != nil {
		return m, err
	}
	m.Paths = []Path{path("old", t.OldTotal, t.OldErrors, lat.Old), path("new", t.NewTotal, t.NewErrors, lat.New)}
	if m.Fleet, err = fleet.Read(ctx, db, name, b.c.AgeOut(), now); err != nil {
		return m, err
	}
	if m.Fleet.Instances == nil {
		m.Fleet.Instances = []fleet.InstanceState{}
	}
	if m.Approvals, err = b.approvalsOf(ctx, plan); err != nil {
		return m, err
	}
	if m.Checks, err = b.checks(ctx, plan); err != nil {
		return m, err
	}
	plans, err := b.c.QueryPlans(ctx, name)
	if err != nil {
		return m, err
	}
	if m.Aggregates, err = b.aggregates(ctx, name); err != nil {
		return m, err
	}
	if m.Sunset, err = b.sunset(ctx, name, now); err != nil {
		return m, err
	}
	if m.Schedules, err = b.schedulesOf(ctx, name); err != nil {
		return m, err
	}
	latest := map[string]int{}
	m.QueryPlans = []rollout.QueryPlan{}
	for _, p := range plans {
		if i, ok := latest[p.Query]; ok {
			m.QueryPlans[i] = p
			continue
		}
		latest[p.Query] = len(m.QueryPlans)
		m.QueryPlans = append(m.QueryPlans, p)
	}
	for _, j := range plan.Backfills {
		bs := Backfill{Job: j.Name, Status: "not started"}
		if p, err := backfill.StateAt(ctx, db, j.Name, now); err == nil {
			bs = Backfill{Job: j.Name, Status: string(p.Status), RowsDone: p.RowsDone, TotalEstimate: p.TotalEstimate,
				Rate: p.Rate, ETASeconds: p.ETA.Seconds(), ChunkSize: p.ChunkSize, Throttle: p.Throttle, Foreground: p.Foreground, Pace: p.Pace, Window: p.Window, Verify: p.Verify, Divergent: p.Divergent}
			if p.Stall != nil {
				since := p.Stall.Since
				bs.StalledWorker, bs.StalledSince = p.Stall.Worker, &since
			}
		} else if !errors.Is(err, backfill.ErrUnknownJob) && !pgerr.UndefinedTable(err) {
			return m, err
		}
		m.Backfills = append(m.Backfills, bs)
	}
	return m, nil
}

func path(name string, calls, errs int64, h fleet.Histogram) Path {
	p := Path{Path: name, Calls: calls, Errors: errs}
	if calls > 0 {
		p.ErrorRate = float64(errs) / float64(calls)
	}
	if h.Total() > 0 {
		p.P50, p.P99 = h.Quantile(0.5), h.Quantile(0.99)
	}
	return p
}

func (b *Board) status(w http.ResponseWriter, r *http.Request) {
	snap, err := b.Snapshot(r.Context())
	if err != nil {
		http.Error(w, "read status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(snap)
}

// dependencies serves the dependency map as JSON, or drawn (.svg).
func (b *Board) dependencies(w http.ResponseWriter, r *http.Request) {
	m, err := report.Dependencies(r.Context(), b.c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if strings.HasSuffix(r.URL.Path, ".svg") {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte(m.SVG()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m)
}

func (b *Board) action(w http.ResponseWriter, r *http.Request) {
	if b.auth == nil {
		http.Error(w, "the status board is read-only", http.StatusForbidden)
		return
	}
	// Both checks hold: the browser's word on where the request comes from
	// (Sec-Fetch-Site, else Origin against Host), and the token only a page
	// of the board can read.
	if err := b.origin.Check(r); err != nil {
		http.Error(w, "cross-origin request refused: "+err.Error(), http.StatusForbidden)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) != 64 || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		http.Error(w, "missing or wrong CSRF token: reload the board", http.StatusForbidden)
		return
	}
	a := Action{Kind: r.PostFormValue("action"), Migration: r.PostFormValue("migration"), Job: r.PostFormValue("job")}
	plan, err := b.c.Plan(a.Migration)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	actor, err := b.auth.Authorize(r, a)
	if err != nil {
		http.Error(w, "not authorized: "+err.Error(), http.StatusForbidden)
		return
	}
	version, _ := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	req := rollout.Request{Migration: a.Migration, Version: version, Actor: actor, Reason: r.PostFormValue("reason"),
		Confirm: r.PostFormValue("confirm") == "yes", Acknowledge: r.PostFormValue("acknowledge") == "yes"}
	if req.Reason == "" {
		req.Reason = "from the status board"
	}
	switch a.Kind {
	case "advance":
		_, err = b.c.Advance(r.Context(), req)
	case "approve":
		err = b.approve(r, actor)
	case "rollback":
		_, err = b.c.Rollback(r.Context(), req)
	case "rollback-to-off":
		req.ToOff = true
		_, err = b.c.Rollback(r.Context(), req)
	case "pause", "resume":
		if !hasJob(plan, a.Job) {
			http.Error(w, fmt.Sprintf("migration %s has no backfill %q", a.Migration, a.Job), http.StatusNotFound)
			return
		}
		if a.Kind == "pause" {
			err = backfill.Pause(r.Context(), b.c.DB(), a.Job)
		} else {
			err = backfill.Resume(r.Context(), b.c.DB(), a.Job)
		}
	default:
		http.Error(w, fmt.Sprintf("unknown action %q", a.Kind), http.StatusBadRequest)
		return
	}
	msg := a.Kind + " " + a.Migration + ": done"
	if err != nil {
		msg = a.Kind + " " + a.Migration + ": " + err.Error()
	}
	// Back to the board, or to the migration's page when posted from it,
	// as a reference relative to the action's own URL: the browser
	// resolves it against the URL it posted to, so the board's mount
	// (http.StripPrefix) is kept. http.Redirect would make it absolute
	// against the path the board sees, the prefix stripped.
	back := "./"
	if r.PostFormValue("from") == "migration" {
		back = "migrations/" + url.PathEscape(a.Migration)
	}
	w.Header().Set("Location", back+"?msg="+url.QueryEscape(msg))
	w.WriteHeader(http.StatusSeeOther)
}

// hasJob reports whether plan has a backfill job of that name.
func hasJob(plan rollout.Plan, job string) bool {
	for _, j := range plan.Backfills {
		if j.Name == job {
			return true
		}
	}
	return false
}
