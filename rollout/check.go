package rollout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/ledger"
)

// Check is a team's own gate condition, judged with the gate of every
// transition into one of the phases Before names, on every advance (and
// every readiness check) with no step of anyone's: the gate "checks",
// unmet while any of them fails, names the check and why. It is exactly
// one of:
//
//   - SQL: an assertion, met when the statement returns no rows (a
//     failure names its first row). It runs in the ledger's transaction,
//     on the transition's connection, inside a savepoint that the
//     database holds to reads only (PostgreSQL: a read-only
//     subtransaction with the timeout as statement_timeout; SQLite: the
//     connection query-only) and that is rolled back after it, so that a
//     mistaken or hostile statement (an UPDATE, a DDL) changes nothing:
//     it fails the check instead. Write it as one SELECT.
//   - URL: an HTTP GET, met on a 2xx status (a failure names the status
//     and the first line of the body, read to 4 KiB at most). A redirect
//     is followed only to the same host (and at most 5); a URL may not
//     carry credentials (the plan is stored and shown).
//   - Func: the name of a Go function registered on the coordinator with
//     [WithCheck]: a function cannot be stored with the plan nor hashed,
//     so the plan names it. A coordinator that has no function of that
//     name (one opened from the stored plans by another program) refuses
//     the gate with a message saying so. A panic fails the check.
//
// Each run ends at Timeout (default 10s, at most 10m; an SQL check on
// SQLite, which has no statement timeout, up to a second later): a check
// still running then fails (unknown is not passing). A func check that ignores
// its context is left to return on its own. Every run of a transition's
// gate is recorded after it, on the coordinator's pool: in the audit
// trail (an event of kind "check", accepted when it passed) and as the
// check's last run ([Coordinator.CheckRuns]). A readiness check
// ([Coordinator.Check], and so the board at each of its reads, the CLI's
// status, [Coordinator.AdvanceWhenMet] at each poll) runs them too, so
// that it says what an advance would, but records nothing: an endpoint or
// an assertion is asked as often as the board reads.
//
// Name, Before, SQL, URL, Func and Timeout are part of the plan's
// definition: a plan that gains a check, or changes one, is a changed plan.
type Check struct {
	Name    string         `json:"name"`
	Before  []ledger.Phase `json:"before"`
	SQL     string         `json:"sql,omitempty"`
	URL     string         `json:"url,omitempty"`
	Func    string         `json:"func,omitempty"`
	Timeout time.Duration  `json:"timeout,omitempty"`
}

// Kind is which of SQL, URL or Func the check is: "sql", "http" or "func".
func (k Check) Kind() string {
	switch {
	case k.SQL != "":
		return "sql"
	case k.URL != "":
		return "http"
	}
	return "func"
}

// Gates reports whether the check is judged on the transition into to.
func (k Check) Gates(to ledger.Phase) bool { return slices.Contains(k.Before, to) }

const (
	defaultCheckTimeout = 10 * time.Second
	maxCheckTimeout     = 10 * time.Minute
	// checkBodyCap is how much of an HTTP check's body is read.
	checkBodyCap = 4 << 10
	// detailCap bounds a run's detail: a row or a body line, not a dump.
	detailCap = 300
)

func (k Check) timeout() time.Duration {
	if k.Timeout > 0 {
		return k.Timeout
	}
	return defaultCheckTimeout
}

// CheckFunc is a Go check: nil when the condition holds, or why not (the
// first line of the error is what the gate and the board show). It must
// return once ctx ends. It runs while the transition holds its
// connection: with a pool of one connection, it must not wait on that
// pool.
type CheckFunc func(ctx context.Context, cc CheckContext) error

// CheckContext is what a [CheckFunc] is told of the transition it gates.
type CheckContext struct {
	Migration string
	Check     string
	// To is the phase the transition enters.
	To ledger.Phase
	// Now is the transition's reading of the coordinator's clock.
	Now time.Time
}

// CheckRun is one run of a check: what it judged and when. It is a value.
type CheckRun struct {
	Migration string        `json:"migration"`
	Check     string        `json:"check"`
	Phase     ledger.Phase  `json:"phase"`
	Passed    bool          `json:"passed"`
	Detail    string        `json:"detail,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
	Actor     string        `json:"actor,omitempty"`
	At        time.Time     `json:"at"`
}

// checkSet is a coordinator's check functions and, on a transition's
// copy, the runs its gate made, recorded once it gives its connection
// back.
type checkSet struct {
	funcs map[string]CheckFunc
	runs  *[]CheckRun
}

// WithCheck registers fn as the Go check called name, which a plan's
// [Check] names in Func. An empty name, a nil fn or a name registered
// twice is refused.
func WithCheck(name string, fn CheckFunc) CoordinatorOption {
	return func(c *Coordinator) error {
		switch {
		case strings.TrimSpace(name) == "":
			return fmt.Errorf("%w: check function name is empty", ErrInvalidArgument)
		case fn == nil:
			return fmt.Errorf("%w: check function %q is nil", ErrInvalidArgument, name)
		}
		if _, dup := c.checks.funcs[name]; dup {
			return fmt.Errorf("%w: check function %q registered twice", ErrInvalidArgument, name)
		}
		if c.checks.funcs == nil {
			c.checks.funcs = map[string]CheckFunc{}
		}
		c.checks.funcs[name] = fn
		return nil
	}
}

// checkChecks refuses a check that could not be judged as meant.
func (p Plan) checkChecks() error {
	seen := map[string]bool{}
	for i, k := range p.Checks {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w %q: check %d (%q): %s", ErrInvalidPlan, p.Migration, i+1, k.Name, fmt.Sprintf(format, args...))
		}
		for _, s := range []string{k.Name, k.SQL, k.URL, k.Func} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				return fail("%s is not valid UTF-8 text", strconv.Quote(s))
			}
		}
		if strings.TrimSpace(k.Name) == "" || strings.ContainsAny(k.Name, "\r\n") || len(k.Name) > 200 {
			return fail("a check's name is one line of at most 200 bytes")
		}
		if seen[k.Name] {
			return fail("two checks of one name")
		}
		seen[k.Name] = true
		n := 0
		for _, s := range []string{k.SQL, k.URL, k.Func} {
			if strings.TrimSpace(s) != "" {
				n++
			}
		}
		if n != 1 {
			return fail("a check is exactly one of SQL, URL or Func (it has %d)", n)
		}
		if len(k.Before) == 0 {
			return fail("it gates no transition (Before is empty)")
		}
		for _, b := range k.Before {
			if !b.Valid() || b == ledger.Planned {
				return fail("no transition enters %s", b)
			}
		}
		if k.Timeout < 0 || k.Timeout > maxCheckTimeout {
			return fail("timeout %v is not within (0, %v]", k.Timeout, maxCheckTimeout)
		}
		if k.URL != "" {
			u, err := url.Parse(k.URL)
			switch {
			case err != nil:
				return fail("URL: %v", err)
			case u.Scheme != "http" && u.Scheme != "https":
				return fail("URL scheme %q is not http or https", u.Scheme)
			case u.Host == "":
				return fail("URL has no host")
			case u.User != nil:
				return fail("URL carries credentials, which a stored plan must not")
			}
		}
	}
	return nil
}

// checksMet runs the checks of plan that gate the transition into to, in
// tx, and says "" when all pass or which failed and why. Each run is kept
// for the transition to record.
func (c *Coordinator) checksMet(ctx context.Context, tx *sqlx.Tx, plan Plan, to ledger.Phase, now time.Time) (string, error) {
	var failed []string
	for _, k := range plan.Checks {
		if !k.Gates(to) {
			continue
		}
		start := time.Now() // a duration, on real time whatever the clock
		detail, err := c.runCheck(ctx, tx, plan.Migration, k, to, now)
		run := CheckRun{Migration: plan.Migration, Check: k.Name, Phase: to, Passed: detail == "" && err == nil,
			Detail: detail, Duration: time.Since(start), At: now}
		if err != nil {
			run.Detail = cut(firstLine(err.Error()))
		}
		if c.checks.runs != nil {
			*c.checks.runs = append(*c.checks.runs, run)
		}
		if err != nil {
			return "", fmt.Errorf("check %q: %w", k.Name, err)
		}
		if !run.Passed {
			failed = append(failed, fmt.Sprintf("check %q failed: %s", k.Name, detail))
		}
	}
	return strings.Join(failed, "; "), nil
}

// runCheck runs one check: "" when it passes, why not, or an error when
// the transaction it ran in can no longer be trusted.
func (c *Coordinator) runCheck(ctx context.Context, tx *sqlx.Tx, migration string, k Check, to ledger.Phase, now time.Time) (string, error) {
	switch k.Kind() {
	case "sql":
		return sqlCheck(ctx, c.dialect, tx, k)
	case "http":
		return httpCheck(ctx, k), nil
	}
	fn, ok := c.checks.funcs[k.Func]
	if !ok {
		return fmt.Sprintf("no check function %q is registered with this coordinator (rollout.WithCheck)", k.Func), nil
	}
	return funcCheck(ctx, fn, k, CheckContext{Migration: migration, Check: k.Name, To: to, Now: now}), nil
}

// sqlCheck runs k's assertion in a read-only savepoint of tx, rolled back
// after it. The database's own statement timeout ends it first; the
// context, a second later, is the backstop.
func sqlCheck(ctx context.Context, d dialect.Dialect, tx *sqlx.Tx, k Check) (string, error) {
	if w := leadingWord(k.SQL); !slices.Contains([]string{"select", "with", "values", "table"}, w) {
		return fmt.Sprintf("the assertion is not a query: it begins with %q, not SELECT, WITH, VALUES or TABLE", w), nil
	}
	for _, s := range d.CheckBegin(k.timeout()) {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return "", fmt.Errorf("open the check's read-only savepoint: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout()+time.Second)
	detail := assertNoRows(ctx, tx, k.SQL)
	cancel()
	// Every statement of the end runs, whatever the one before did: a
	// statement that ended the transaction (a COMMIT after a first
	// statement) leaves no savepoint to go back to, but the connection
	// must still be made writable again. Then the ledger's transaction
	// is gone, and the gate must not go on in it.
	var errs []error
	for _, s := range d.CheckEnd() {
		if _, err := tx.ExecContext(context.WithoutCancel(ctx), s); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("roll the check back (did its SQL end the transaction?): %w", err)
	}
	return detail, nil
}

// leadingWord is the first word of q, lower case, past spaces, comments
// and opening parentheses; "" past a comment within a comment, or a
// line's comment that a CR alone ends. The database's read-only mode is
// what keeps a check from writing; this keeps a transaction's own
// commands (COMMIT, ROLLBACK, RELEASE), which that mode allows, from
// ending the ledger's transaction under it. It is written here, not parsed, because the
// assertion is in the SQL of whichever database the plan runs on.
func leadingWord(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(q, "--"):
			// PostgreSQL ends it at a CR too, SQLite only at a LF: past a
			// CR alone, no first word reads the same to both (past a
			// CRLF, one does).
			i := strings.IndexAny(q, "\r\n")
			if i < 0 || q[i] == '\r' && !strings.HasPrefix(q[i:], "\r\n") {
				return ""
			}
			q = q[i+1:]
			continue
		case strings.HasPrefix(q, "/*"):
			// A comment within it ends at another place for each
			// database (PostgreSQL nests them, SQLite does not): "/* /*
			// */ SELECT */ COMMIT" begins with COMMIT for PostgreSQL.
			// It has no first word that both read the same. Its end is
			// looked for past its own "/*" ("/*/" does not end it).
			body := q[2:]
			i := strings.Index(body, "*/")
			if i < 0 || strings.Contains(body[:i+1], "/*") {
				return ""
			}
			q = body[i+2:]
			continue
		}
		end := strings.IndexFunc(q, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') })
		if end < 0 {
			end = len(q)
		}
		return strings.ToLower(q[:end])
	}
}

// assertNoRows is "" when q returns no rows, else its first row or why it
// could not run.
func assertNoRows(ctx context.Context, tx *sqlx.Tx, q string) string {
	rows, err := tx.QueryxContext(ctx, q)
	if err != nil {
		return cut("the assertion did not run: " + firstLine(err.Error()))
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return cut("the assertion did not finish: " + firstLine(err.Error()))
		}
		return ""
	}
	cols, err := rows.Columns()
	if err != nil {
		return cut("the assertion returned a row: " + err.Error())
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return cut("the assertion returned a row: " + err.Error())
	}
	parts := make([]string, len(cols))
	for i, col := range cols {
		parts[i] = col + "=" + cellText(vals[i])
	}
	return cut("first offending row: " + strings.Join(parts, ", "))
}

func cellText(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return strconv.Quote(string(v))
	case string:
		return strconv.Quote(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// httpCheck GETs k's URL: "" on a 2xx status.
func httpCheck(ctx context.Context, k Check) string {
	ctx, cancel := context.WithTimeout(ctx, k.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL, nil)
	if err != nil {
		return cut("bad request: " + err.Error())
	}
	// A transport of its own, keeping no connection: a check is asked
	// seldom, and leaves nothing running behind it.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableKeepAlives = true
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return http.ErrUseLastResponse
		}
		if r.URL.Host != via[0].URL.Host {
			return http.ErrUseLastResponse // the 3xx is the answer: another host is not the one the plan names
		}
		return nil
	}}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Sprintf("no answer within %v", k.timeout())
		}
		return cut("GET failed: " + firstLine(err.Error()))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return ""
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, checkBodyCap)) // what could be read is shown; a cut body is still a failure
	detail := "HTTP " + strconv.Itoa(resp.StatusCode)
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		detail += " (redirect to " + loc + " not followed)"
	}
	if line := strings.TrimSpace(firstLine(string(body))); line != "" {
		detail += ": " + line
	}
	return cut(detail)
}

// funcCheck calls fn, a panic being a failure, and waits at most k's
// timeout for it.
func funcCheck(ctx context.Context, fn CheckFunc, k Check, cc CheckContext) string {
	ctx, cancel := context.WithTimeout(ctx, k.timeout())
	defer cancel()
	done := make(chan error, 1) // buffered: a func that returns late does not block
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("panic: %v", p)
			}
		}()
		done <- fn(ctx, cc)
	}()
	select {
	case err := <-done:
		if err != nil {
			return cut(firstLine(err.Error()))
		}
		return ""
	case <-ctx.Done():
		return fmt.Sprintf("no answer within %v", k.timeout())
	}
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

func cut(s string) string {
	if len(s) <= detailCap {
		return s
	}
	s = s[:detailCap]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// recordChecks records a transition's check runs, made by actor, on c's
// pool: each as an event of the audit trail and as its check's last run.
func (c *Coordinator) recordChecks(ctx context.Context, actor string, runs *[]CheckRun) error {
	if runs == nil {
		return nil
	}
	var errs []error
	for _, r := range *runs {
		r.Actor = actor
		verdict := "failed"
		if r.Passed {
			verdict = "passed"
		}
		reason := fmt.Sprintf("check %q %s in %v", r.Check, verdict, r.Duration.Round(time.Millisecond))
		if r.Detail != "" {
			reason += ": " + r.Detail
		}
		errs = append(errs, c.recordAt(ctx, ledger.Event{Migration: r.Migration, Kind: "check", Accepted: r.Passed, Actor: actor,
			ToPhase: r.Phase.String(), Reason: reason}, r.At))
		if _, err := c.db.ExecContext(ctx, c.dialect.RecordCheckRun(), r.Migration, r.Check, r.Phase.String(), r.Passed,
			r.Detail, int64(r.Duration), actor, dialect.Stamp(r.At)); err != nil {
			errs = append(errs, fmt.Errorf("%w: check %q of %s: %w", ErrAudit, r.Check, r.Migration, err))
		}
	}
	return errors.Join(errs...)
}

// CheckRuns is the last recorded run of each check of migration, by
// check name (a check never run has none).
func (c *Coordinator) CheckRuns(ctx context.Context, migration string) ([]CheckRun, error) {
	if ok, err := c.dialect.TableExists(ctx, c.db, ident.Table{Name: "schemashift_check_runs"}); err != nil || !ok {
		return nil, err // a ledger a read-only process found without the addition has no runs
	}
	rows, err := c.db.QueryContext(ctx, c.dialect.LastCheckRuns(), migration)
	if err != nil {
		return nil, fmt.Errorf("read check runs of %s: %w", migration, err)
	}
	defer rows.Close()
	var runs []CheckRun
	for rows.Next() {
		var r CheckRun
		var phase string
		var ns int64
		var at dialect.Time
		var detail, actor sql.NullString
		if err := rows.Scan(&r.Check, &phase, &r.Passed, &detail, &ns, &actor, &at); err != nil {
			return nil, fmt.Errorf("read check runs of %s: %w", migration, err)
		}
		if r.Phase, err = ledger.ParsePhase(phase); err != nil {
			return nil, fmt.Errorf("read check runs of %s: %w", migration, err)
		}
		r.Migration, r.Detail, r.Actor, r.Duration, r.At = migration, detail.String, actor.String, time.Duration(ns), at.Time
		if n := len(runs); n > 0 && runs[n-1].Check == r.Check {
			continue // two runs recorded at once drew one number: one is kept
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read check runs of %s: %w", migration, err)
	}
	return runs, nil
}
