package board

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

//go:embed *.html
var pagesFS embed.FS

// live is the page's script: it follows the event stream and swaps the
// page's live part for a fresh copy when the board says it changed. It is
// inlined under the response's nonce, so the page loads nothing else.
//
//go:embed live.js
var live string

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"pct": func(done, total int64) int64 {
		if total <= 0 {
			return 0
		}
		return min(100, done*100/total)
	},
	"ago":    func(now, t time.Time) string { return report.HumanDuration(now.Sub(t)) },
	"human":  report.HumanDuration,
	"secs":   func(s float64) string { return report.HumanDuration(time.Duration(s * float64(time.Second))) },
	"esc":    url.PathEscape,
	"pctf":   func(f float64) string { return fmt.Sprintf("%.2f %%", 100*f) },
	"stamp":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"script": func() template.JS { return template.JS(live) }, // #nosec: the board's own file
	"deref":  func(d *time.Duration) time.Duration { return *d },
	"mb":     func(b int64) float64 { return float64(b) / 1e6 },
	"took": func(p backfill.Progress) string {
		if p.FinishedAt == nil {
			return "still running"
		}
		return report.HumanDuration(p.FinishedAt.Sub(p.StartedAt))
	},
	"actions": func(m Migration, csrf, from string) part {
		return part{M: m, CSRF: csrf, From: from, Root: root(from)}
	},
	"backfills": func(m Migration, readOnly bool, csrf, from string) part {
		return part{M: m, ReadOnly: readOnly, CSRF: csrf, From: from, Root: root(from)}
	},
	"code":    code,
	"fleetOf": func(m Migration, now time.Time) part { return part{M: m, Now: now} },
}).ParseFS(pagesFS, "*.html"))

// code renders text in which `…` spans are code, as the reports write
// their advice, with everything escaped.
func code(s string) template.HTML {
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 && i < strings.Count(s, "`") {
			b.WriteString("<code>" + template.HTMLEscapeString(part) + "</code>")
			continue
		}
		if i%2 == 1 {
			b.WriteString("`") // an unmatched backtick stays one
		}
		b.WriteString(template.HTMLEscapeString(part))
	}
	return template.HTML(b.String()) // #nosec: every part escaped
}

// part is what a part of a page (parts.html) is given.
type part struct {
	M          Migration
	ReadOnly   bool
	CSRF, From string
	Root       string // the board's root, relative to the page
	Now        time.Time
}

func root(from string) string {
	if from == "migration" {
		return "../"
	}
	return ""
}

// head is what every page's layout needs.
type head struct {
	Title string
	Root  string // the board's root, relative to the page: "" or "../"
	Nonce string // of this response's script
	// Events is the page's event stream, and Fingerprint the state it was
	// rendered from; "" on a page that does not follow the board.
	Events, Fingerprint string
}

// csp is the pages' Content-Security-Policy: nothing from elsewhere, and
// no script but the one carrying the response's nonce.
func csp(nonce string) string {
	return "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; " +
		"connect-src 'self'; script-src 'nonce-" + nonce + "'"
}

// newNonce returns a fresh nonce for one response.
func newNonce() string {
	var raw [18]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (it panics instead)
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// render writes the page name with data, under a fresh nonce.
func render(w http.ResponseWriter, name string, h head, data any) {
	h.Nonce = newNonce()
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, struct {
		Head head
		Page any
	}{h, data}); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", csp(h.Nonce))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

const csrfCookie = "schemashift_csrf"

// csrf returns the request's CSRF token, setting a new one when it has
// none.
func csrf(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 64 {
		return c.Value
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // never fails
	token := hex.EncodeToString(raw[:])
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return token
}

// fingerprint is a hash of what a page shows of snap, less what only
// time's passing changes: the clock's readings, when each instance was
// last seen (every heartbeat), when it last saw each stage and made an
// old call (whether it did stays in), and a running backfill's rate and
// ETA (its rows done stay in). It changes when the ledger moves, a gate
// or a trip does, an instance comes, goes or changes stage or build, the
// heartbeats' counts do, or a backfill progresses, so an open page
// fetches itself again for those, not for every heartbeat.
func fingerprint(snap Status) string {
	snap.GeneratedAt = time.Time{}
	ms := make([]Migration, len(snap.Migrations))
	for i, m := range snap.Migrations {
		m.Fleet.Now = time.Time{}
		m.Fleet.Instances = timeless(m.Fleet.Instances)
		m.Fleet.Unaware = timeless(m.Fleet.Unaware)
		bs := make([]Backfill, len(m.Backfills))
		for j, bf := range m.Backfills {
			bf.Rate, bf.ETASeconds = 0, 0
			bs[j] = bf
		}
		m.Backfills = bs
		ms[i] = m
	}
	snap.Migrations = ms // copies: the caller's snap is rendered as it is
	doc, err := json.Marshal(snap)
	if err != nil {
		return "" // a Status always marshals; "" only makes every poll a change
	}
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:12])
}

// timeless returns copies of the instances without the times only
// heartbeats move.
func timeless(in []fleet.InstanceState) []fleet.InstanceState {
	if in == nil {
		return nil
	}
	out := make([]fleet.InstanceState, len(in))
	for i, s := range in {
		s.LastSeen = time.Time{}
		s.StageSeen = maps.Clone(s.StageSeen)
		for st := range s.StageSeen {
			s.StageSeen[st] = time.Time{}
		}
		if s.LastOldCall != nil {
			s.LastOldCall = &time.Time{}
		}
		out[i] = s
	}
	return out
}

func (b *Board) page(w http.ResponseWriter, r *http.Request) {
	snap, err := b.Snapshot(r.Context())
	if err != nil {
		http.Error(w, "read status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	token := ""
	if !snap.ReadOnly {
		token = csrf(w, r)
	}
	render(w, "board.html", head{Title: "schemashift status", Events: "events", Fingerprint: fingerprint(snap)}, struct {
		Status
		CSRF, Message string
	}{snap, token, r.URL.Query().Get("msg")})
}

// PhaseRow is one phase of a migration's ladder on its page: passed,
// current, next or ahead, when it was last entered and by whom, how long
// it lasted, and its gate. It is a value.
type PhaseRow struct {
	Phase    ledger.Phase
	State    string // passed, current, next, ahead
	Entered  time.Time
	By, Kind string
	Took     time.Duration
	Gate     string
}

func (b *Board) migrationPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("migration")
	plan, err := b.c.Plan(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	ctx := r.Context()
	snap, err := b.Snapshot(ctx)
	if err != nil {
		http.Error(w, "read status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var m Migration
	for _, x := range snap.Migrations {
		if x.Migration == name {
			m = x
		}
	}
	retro, err := report.Retrospect(ctx, b.c, name)
	if err != nil {
		http.Error(w, "read timeline: "+err.Error(), http.StatusInternalServerError)
		return
	}
	charts, err := b.charts(ctx, plan, m, snap.GeneratedAt)
	if err != nil {
		http.Error(w, "read charts: "+err.Error(), http.StatusInternalServerError)
		return
	}
	token := ""
	if !snap.ReadOnly {
		token = csrf(w, r)
	}
	events, err := ledger.Audit(ctx, b.c.DB(), name, b.audit)
	if err != nil {
		http.Error(w, "read audit: "+err.Error(), http.StatusInternalServerError)
		return
	}
	render(w, "migration.html", head{Title: name + " · schemashift", Root: "../", Events: "../events", Fingerprint: fingerprint(snap)}, struct {
		Migration
		GeneratedAt   time.Time
		ReadOnly      bool
		CSRF, Message string
		Ladder        []PhaseRow
		Stays         []report.PhaseTime
		Charts        []template.HTML
		Audit         []ledger.Event
	}{m, snap.GeneratedAt, snap.ReadOnly, token, r.URL.Query().Get("msg"), ladder(plan, m, retro), retro.Phases, charts, events})
}

// ladder lays out every phase of the plan against where m stands.
func ladder(plan rollout.Plan, m Migration, retro report.Retrospective) []PhaseRow {
	var rows []PhaseRow
	for p := ledger.Planned; p <= ledger.Contracted; p++ {
		row := PhaseRow{Phase: p, State: "ahead"}
		if p > ledger.Planned {
			row.Gate = report.Gate(plan, p)
		}
		switch {
		case p < m.Phase:
			row.State = "passed"
		case p == m.Phase:
			row.State = "current"
		case p == m.Phase+1:
			row.State = "next"
		}
		if p <= m.Phase {
			for _, s := range retro.Phases { // the last stay
				if s.Phase == p {
					row.Entered, row.By, row.Kind, row.Took = s.Entered, s.Actor, s.Kind, s.Duration
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// format is the form a report is asked for: "md" or "json" by ?format=,
// or by the Accept header (text/markdown, application/json); else "html".
func format(r *http.Request) string {
	switch f := r.URL.Query().Get("format"); f {
	case "md", "markdown":
		return "md"
	case "json", "html":
		return f
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		t, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch t {
		case "text/html", "*/*":
			return "html"
		case "text/markdown":
			return "md"
		case "application/json":
			return "json"
		}
	}
	return "html"
}

func reportError(w http.ResponseWriter, err error) {
	if errors.Is(err, ledger.ErrUnknownMigration) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func writeAs(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

// runbook serves a migration's runbook as a page, or as Markdown or JSON
// (see format).
func (b *Board) runbook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("migration")
	pr, err := report.ProcedureFor(r.Context(), b.c, name)
	if err != nil {
		reportError(w, err)
		return
	}
	switch format(r) {
	case "md":
		writeAs(w, "text/markdown; charset=utf-8", []byte(pr.Markdown()))
	case "json":
		doc, _ := json.Marshal(pr) // a Procedure always marshals
		writeAs(w, "application/json", doc)
	default:
		render(w, "runbook.html", head{Title: "Runbook: " + name, Root: "../"}, pr)
	}
}

// retrospective serves a migration's retrospective as a page, or as
// Markdown or JSON (see format).
func (b *Board) retrospective(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("migration")
	retro, err := report.Retrospect(r.Context(), b.c, name)
	if err != nil {
		reportError(w, err)
		return
	}
	switch format(r) {
	case "md":
		writeAs(w, "text/markdown; charset=utf-8", []byte(retro.Markdown()))
	case "json":
		doc, _ := json.Marshal(retro) // a Retrospective always marshals
		writeAs(w, "application/json", doc)
	default:
		render(w, "retro.html", head{Title: "Retrospective: " + name, Root: "../"}, retro)
	}
}

// chartsFor is the number of a job's last chunks its charts draw.
const chartsFor = 300

// charts draws m's charts: each backfill's rows/s and chunk time over its
// last chunks, the paths' latency and error rate, and from the
// heartbeats' samples of the chart window before now the shadow
// consistency against the plan's threshold, each path's latency per
// instance and each instance's error rate, over time.
func (b *Board) charts(ctx context.Context, plan rollout.Plan, m Migration, now time.Time) ([]template.HTML, error) {
	var out []template.HTML
	for _, j := range plan.Backfills {
		h, err := backfill.History(ctx, b.c.DB(), j.Name, chartsFor)
		if errors.Is(err, backfill.ErrUnknownJob) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(h) == 0 {
			continue
		}
		rate, took := series{Name: j.Name}, series{Name: j.Name}
		for _, c := range h {
			d := c.Finished.Sub(c.Started)
			took.Points = append(took.Points, point{At: c.Finished, Value: float64(d) / float64(time.Millisecond)})
			if d > 0 {
				rate.Points = append(rate.Points, point{At: c.Finished, Value: float64(c.Rows) / d.Seconds()})
			}
		}
		out = append(out,
			lineChart(chart{ID: "rate-" + j.Name, Title: "Backfill " + j.Name + ": rows/s per chunk", Unit: "rows/s"}, rate),
			lineChart(chart{ID: "chunk-time-" + j.Name, Title: "Backfill " + j.Name + ": chunk time", Unit: "ms"}, took))
	}
	out = append(out, latencyChart(m.Paths))
	h, err := fleet.Samples(ctx, b.c.DB(), m.Migration, now.Add(-b.window), now)
	if err != nil {
		return nil, err
	}
	step := chartStep(h, now)
	steps := h.Every(step)
	out = append(out, consistencyChart(h.Consistency(step), m.Threshold),
		pathLatencyChart(steps, "old"), pathLatencyChart(steps, "new"), errorRateChart(steps))
	return out, nil
}
