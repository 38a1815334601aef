package rollout

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/ident"
	"github.com/schemashift/schemashift/ledger"
)

// AggregateKind is what an [Aggregate] computes over each side.
type AggregateKind string

// The kinds of aggregate.
const (
	// AggregateCount counts the rows where the column or expression is not
	// NULL (every row, when a side names neither).
	AggregateCount AggregateKind = "count"
	// AggregateSum sums the column or expression (0 over no rows).
	AggregateSum AggregateKind = "sum"
	// AggregateCountDistinct counts its distinct values that are not NULL.
	AggregateCountDistinct AggregateKind = "count distinct"
)

// AggregateSide is where an [Aggregate] is taken on one shape: a table
// ("name" or "schema.name", resolved once into its parts and quoted:
// never spliced as written) and a column or an expression of its
// columns, grouped by a column or not. It is a value.
type AggregateSide struct {
	Table string `json:"table"`
	// Column is a column of Table, quoted.
	Column string `json:"column,omitempty"`
	// Expr is SQL: exactly one expression over Table's columns
	// ("amount * 100", "NULLIF(full_name, '')"), checked as the ddl
	// package checks a CHECK's (PostgreSQL's parser reads it, a subquery,
	// a comment, a ';' or a second clause is refused), read in a
	// read-only statement. At most one of Column and Expr is set; a count
	// may name neither, and counts every row.
	Expr string `json:"expr,omitempty"`
	// GroupBy, when set, is a column of Table: the aggregate is taken per
	// value of it (NULL one group), and compared group by group. Both
	// sides are grouped or neither.
	GroupBy string `json:"group_by,omitempty"`
}

func (s AggregateSide) String() string {
	what := s.Column
	if s.Expr != "" {
		what = "(" + s.Expr + ")"
	}
	if what == "" {
		what = "*"
	}
	out := s.Table + "." + what
	if s.GroupBy != "" {
		out += " by " + s.GroupBy
	}
	return out
}

// Tolerance is how far the new side of an [Aggregate] may be from the
// old: a difference passes when it is at most Absolute, or at most
// Relative times the old value. The zero Tolerance allows none: the
// sides must agree exactly. It is a value.
type Tolerance struct {
	Absolute float64 `json:"absolute,omitempty"`
	Relative float64 `json:"relative,omitempty"`
}

func (t Tolerance) String() string {
	var parts []string
	if t.Absolute > 0 {
		parts = append(parts, fmt.Sprintf("±%g", t.Absolute))
	}
	if t.Relative > 0 {
		parts = append(parts, fmt.Sprintf("±%g%%", t.Relative*100))
	}
	if len(parts) == 0 {
		return "exact"
	}
	return strings.Join(parts, " or ")
}

// defaultAggregateTimeout is an [Aggregate]'s Timeout left zero.
const defaultAggregateTimeout = 30 * time.Second

// Aggregate is a figure of the data that must come out the same over
// the old shape and the new: "the rows with a name" (users.full_name
// counted against users.given_name), "the amounts per currency" (the sum
// of orders.amount_cents against that of order_totals.amount * 100,
// grouped by currency). It is a value, part of a [Plan]'s definition.
//
// The old side is snapshotted when the expand is applied (the advance
// to expanded takes it, in the ledger's table
// schemashift_aggregate_snapshots, before the expand's DDL runs). The
// advances to live and to contracted are gated on it (gate
// "aggregates"): each side is computed then, in one read-only statement
// of at most Timeout, and the new side must be within Tolerance of the
// old one, group by group; when the old side is no longer there, of the
// snapshot. The snapshot is reported beside them (how far the data moved
// since the expand) whether or not it is the reference. An unmet gate
// names the aggregate and its group of the largest difference. Each
// comparison of an advance is recorded in the audit trail (an event of
// kind "aggregates" whose reason is the [AggregateComparison] as JSON);
// [Coordinator.LastAggregateComparison] reads the last.
type Aggregate struct {
	Name      string        `json:"name"`
	Kind      AggregateKind `json:"kind"`
	Old       AggregateSide `json:"old"`
	New       AggregateSide `json:"new"`
	Tolerance Tolerance     `json:"tolerance"`
	// Timeout bounds each side's statement (default 30s).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// sideSQL is a side resolved once: its table's parts, and its value and
// group as SQL (quoted names, a checked expression).
type sideSQL struct {
	table        ident.Table
	value, group string
	columns      []string // the columns it names, which must be there
}

// resolve checks s for kind, and returns it as SQL.
func (s AggregateSide) resolve(kind AggregateKind) (sideSQL, error) {
	t, err := ident.ParseTable(s.Table)
	if err != nil {
		return sideSQL{}, fmt.Errorf("table: %w", err)
	}
	out := sideSQL{table: t}
	switch {
	case s.Column != "" && s.Expr != "":
		return sideSQL{}, errors.New("it names both a column and an expression")
	case s.Column != "":
		q, err := ident.Quote(s.Column)
		if err != nil {
			return sideSQL{}, fmt.Errorf("column: %w", err)
		}
		out.value, out.columns = q, append(out.columns, s.Column)
	case s.Expr != "":
		e, err := checkAggregateExpr(s.Expr)
		if err != nil {
			return sideSQL{}, err
		}
		out.value = e
	case kind == AggregateCount:
		out.value = "*"
	default:
		return sideSQL{}, fmt.Errorf("a %s needs a column or an expression", kind)
	}
	if s.GroupBy != "" {
		q, err := ident.Quote(s.GroupBy)
		if err != nil {
			return sideSQL{}, fmt.Errorf("group by: %w", err)
		}
		out.group, out.columns = q, append(out.columns, s.GroupBy)
	}
	return out, nil
}

// checkAggregateExpr holds e to what the ddl package holds a CHECK's
// expression to (see its doc, "SQL fragments"): exactly one expression,
// no subquery, reading the same to PostgreSQL and SQLite. It is checked
// through an operation that puts it in that place, and not rendered
// from there: the aggregate's statement is the dialect's.
func checkAggregateExpr(e string) (string, error) {
	if _, err := (ddl.AddCheck{Name: "schemashift_aggregate", Table: "schemashift_aggregate", Expr: e}).Up(parserMajor); err != nil {
		return "", fmt.Errorf("expression: %w", err)
	}
	return strings.TrimSpace(e), nil
}

// checkAggregates refuses aggregates that could never be computed or
// compared as declared.
func (p Plan) checkAggregates() error {
	seen := map[string]bool{}
	for i, a := range p.Aggregates {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w %q: aggregate %d (%q): %s", ErrInvalidPlan, p.Migration, i+1, a.Name, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.TrimSpace(a.Name) == "":
			return fail("it has no name")
		case seen[a.Name]:
			return fail("two aggregates have this name")
		case !slices.Contains([]AggregateKind{AggregateCount, AggregateSum, AggregateCountDistinct}, a.Kind):
			return fail("kind %q is not %q, %q or %q", a.Kind, AggregateCount, AggregateSum, AggregateCountDistinct)
		case (a.Old.GroupBy == "") != (a.New.GroupBy == ""):
			return fail("one side is grouped and the other is not: the groups could not be compared")
		case !(a.Tolerance.Absolute >= 0) || math.IsInf(a.Tolerance.Absolute, 1):
			return fail("absolute tolerance %v is not a number of 0 or more", a.Tolerance.Absolute)
		case !(a.Tolerance.Relative >= 0) || math.IsInf(a.Tolerance.Relative, 1):
			return fail("relative tolerance %v is not a number of 0 or more", a.Tolerance.Relative)
		case a.Timeout < 0:
			return fail("timeout %v is negative", a.Timeout)
		}
		seen[a.Name] = true
		for _, side := range []struct {
			name string
			s    AggregateSide
		}{{"old", a.Old}, {"new", a.New}} {
			if _, err := side.s.resolve(a.Kind); err != nil {
				return fail("%s side: %v", side.name, err)
			}
		}
	}
	return nil
}

// AggregateGroup is one group of an aggregate's comparison (the only
// one of an aggregate not grouped): its values as the database spelt
// them ("" where the side has no such group, or was not computed). It
// is a value.
type AggregateGroup struct {
	// Group is the group's value as text ("" when not grouped); Null is
	// the group of NULL.
	Group string `json:"group,omitempty"`
	Null  bool   `json:"null,omitempty"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
	// Snapshot is the old side's value when the expand was applied.
	Snapshot string `json:"snapshot,omitempty"`
	// Difference is new minus the reference (old, or the snapshot when
	// the old side is gone); Within says whether the tolerance allows it.
	Difference string `json:"difference"`
	Within     bool   `json:"within"`
	// SnapshotDifference is new minus the snapshot ("" without one).
	SnapshotDifference string `json:"snapshot_difference,omitempty"`

	diff *big.Rat
}

// Label is how messages name the group of an aggregate grouped: NULL,
// or its value quoted.
func (g AggregateGroup) Label() string {
	if g.Null {
		return "NULL"
	}
	return strconv.Quote(g.Group)
}

// AggregateResult is one aggregate's comparison. It is a value.
type AggregateResult struct {
	Name      string        `json:"name"`
	Kind      AggregateKind `json:"kind"`
	Old       string        `json:"old_side"`
	New       string        `json:"new_side"`
	Tolerance Tolerance     `json:"tolerance"`
	Grouped   bool          `json:"grouped,omitempty"`
	// Against is what the new side was held to: "old" (computed now) or
	// "snapshot" (the old side is gone).
	Against string `json:"against"`
	// SnapshotAt is when the snapshot was taken (nil: none was).
	SnapshotAt *time.Time       `json:"snapshot_at,omitempty"`
	Groups     []AggregateGroup `json:"groups"`
	Passed     bool             `json:"passed"`
	// Worst is the failing group of the largest difference.
	Worst *AggregateGroup `json:"worst,omitempty"`
	// Problem, when set, is why it could not be compared.
	Problem string `json:"problem,omitempty"`
}

// AggregateComparison is what an advance's gate found of a plan's
// aggregates. It is a value.
type AggregateComparison struct {
	Migration string `json:"migration"`
	// Phase is the phase the advance was to.
	Phase      string            `json:"phase"`
	At         time.Time         `json:"at"`
	Passed     bool              `json:"passed"`
	Aggregates []AggregateResult `json:"aggregates"`
}

// Unmet is why the comparison fails the gate ("" when it passes): each
// failing aggregate, with its worst group.
func (c AggregateComparison) Unmet() string {
	var out []string
	for _, r := range c.Aggregates {
		if r.Passed {
			continue
		}
		if r.Problem != "" {
			out = append(out, fmt.Sprintf("aggregate %q: %s", r.Name, r.Problem))
			continue
		}
		w := r.Worst
		ref := w.Old
		if r.Against == "snapshot" {
			ref = w.Snapshot
		}
		where := ""
		if r.Grouped {
			where = " group " + w.Label() + ":"
		}
		out = append(out, fmt.Sprintf("aggregate %q (%s):%s new %s against %s %s, difference %s, allowed %s",
			r.Name, r.Kind, where, orNone(w.New), r.Against, orNone(ref), w.Difference, r.Tolerance))
	}
	return strings.Join(out, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// aggregateValues is one side's values by group key ("" for none;
// "null" for NULL; the value JSON-quoted otherwise).
type aggregateValues map[string]string

func groupKey(grouped bool, v sql.NullString, null bool) string {
	switch {
	case !grouped:
		return ""
	case null || !v.Valid:
		return "null"
	}
	b, _ := json.Marshal(v.String) // a string always marshals
	return string(b)
}

func groupOf(key string) AggregateGroup {
	switch key {
	case "":
		return AggregateGroup{}
	case "null":
		return AggregateGroup{Null: true}
	}
	var s string
	_ = json.Unmarshal([]byte(key), &s) // keys are made by groupKey
	return AggregateGroup{Group: s}
}

// computeSide computes one side in q (tx), in one read-only statement:
// present is false when its table or a column it names is not there.
func (c *Coordinator) computeSide(ctx context.Context, tx dialect.Conn, a Aggregate, s AggregateSide) (aggregateValues, bool, error) {
	r, err := s.resolve(a.Kind)
	if err != nil {
		return nil, false, err
	}
	exists, err := c.dialect.TableExists(ctx, tx, r.table)
	if err != nil || !exists {
		return nil, false, err
	}
	if len(r.columns) > 0 {
		cols, err := c.dialect.Columns(ctx, tx, r.table)
		if err != nil {
			return nil, false, err
		}
		for _, want := range r.columns {
			if !slices.ContainsFunc(cols, func(h dialect.Column) bool { return h.Name == want }) {
				return nil, false, nil
			}
		}
	}
	timeout := a.Timeout
	if timeout == 0 {
		timeout = defaultAggregateTimeout
	}
	q := c.dialect.AggregateStatement(string(a.Kind), r.value, r.table.Quoted(), r.group)
	out := aggregateValues{}
	err = c.dialect.ReadOnly(ctx, tx, timeout, func(ctx context.Context) error {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				key   sql.NullString
				null  int
				value sql.NullString
			)
			if r.group == "" {
				err = rows.Scan(&value)
			} else {
				err = rows.Scan(&key, &null, &value)
			}
			if err != nil {
				return err
			}
			out[groupKey(r.group != "", key, null == 1)] = value.String
		}
		return rows.Err()
	})
	if err != nil {
		return nil, false, fmt.Errorf("aggregate %q: %s: %w", a.Name, s, err)
	}
	return out, true, nil
}

// snapshot is a migration's snapshot: each aggregate's values, and when.
type snapshot struct {
	values map[string]aggregateValues
	at     map[string]time.Time
}

func (c *Coordinator) readSnapshot(ctx context.Context, q sqlx.QueryerContext, migration string) (snapshot, error) {
	s := snapshot{values: map[string]aggregateValues{}, at: map[string]time.Time{}}
	exists, err := c.dialect.TableExists(ctx, q, ident.Table{Name: "schemashift_aggregate_snapshots"})
	if err != nil || !exists {
		return s, err // a ledger a build before aggregates made: no snapshot
	}
	rows, err := q.QueryContext(ctx, c.dialect.ReadAggregateSnapshot(), migration)
	if err != nil {
		return s, fmt.Errorf("read the aggregates' snapshot: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, key, value string
		var at dialect.Time
		if err := rows.Scan(&name, &key, &value, &at); err != nil {
			return s, fmt.Errorf("read the aggregates' snapshot: %w", err)
		}
		if s.values[name] == nil {
			s.values[name] = aggregateValues{}
		}
		s.values[name][key] = value
		s.at[name] = at.Time
	}
	return s, rows.Err()
}

// aggregatesMet is the aggregates' part of the gate of the transition to
// to, judged in a transition only: at expanded, the old sides' snapshot;
// at live and contracted, the comparison, recorded in the audit trail
// after the transition. It returns "aggregates" and why it
// is unmet, or "" when it is met or has nothing to say.
func (c *Coordinator) aggregatesMet(ctx context.Context, tx *sqlx.Tx, plan Plan, to ledger.Phase, from ledger.Phase, now time.Time) (string, string, error) {
	if len(plan.Aggregates) == 0 {
		return "", "", nil
	}
	if c.unrecorded == nil {
		// A check (readiness, a status, the board's every poll) computes
		// none: an aggregate is a pass over a whole table, too heavy to
		// repeat at every poll. It reports the last advance's comparison
		// into to, when that one failed; the next advance compares again.
		if to != ledger.Live && to != ledger.Contracted {
			return "", "", nil
		}
		last, err := c.lastComparison(ctx, tx, plan.Migration)
		if err != nil || last == nil || last.Passed || last.Phase != to.String() {
			return "", "", err
		}
		return "aggregates", last.Unmet() + " (at the last advance; the next compares again)", nil
	}
	switch to {
	case ledger.Expanded:
		return c.takeSnapshot(ctx, tx, plan, now)
	case ledger.Live, ledger.Contracted:
	default:
		return "", "", nil
	}
	cmp, err := c.compareAggregates(ctx, tx, plan, to, now)
	if err != nil {
		return "", "", err
	}
	if c.unrecorded != nil {
		// In a transition (not a check): recorded once the transition
		// gives its connection back, whatever it becomes, by the pool.
		doc, err := json.Marshal(cmp)
		if err != nil {
			return "", "", err
		}
		*c.unrecorded = append(*c.unrecorded, ledger.Event{Migration: plan.Migration, Kind: "aggregates", Accepted: cmp.Passed,
			Actor: "gate", FromPhase: from.String(), ToPhase: to.String(), Reason: string(doc), At: now})
	}
	return "aggregates", cmp.Unmet(), nil
}

// takeSnapshot computes every old side and, in a transition, stores them
// in tx in place of the migration's last snapshot, recording it in the
// audit trail with the transition.
func (c *Coordinator) takeSnapshot(ctx context.Context, tx *sqlx.Tx, plan Plan, now time.Time) (string, string, error) {
	taken := map[string]aggregateValues{}
	for _, a := range plan.Aggregates {
		v, present, err := c.computeSide(ctx, tx, a, a.Old)
		if err != nil {
			return "", "", err
		}
		if !present {
			return "aggregates", fmt.Sprintf("aggregate %q: the old side %s is not there to snapshot", a.Name, a.Old), nil
		}
		taken[a.Name] = v
	}
	if c.unrecorded == nil {
		return "aggregates", "", nil // a check: nothing stored
	}
	if _, err := tx.ExecContext(ctx, c.dialect.ClearAggregateSnapshot(), plan.Migration); err != nil {
		return "", "", fmt.Errorf("snapshot aggregates: %w", err)
	}
	var summary []string
	for _, a := range plan.Aggregates {
		keys := make([]string, 0, len(taken[a.Name]))
		for k := range taken[a.Name] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := taken[a.Name][k]
			if _, err := tx.ExecContext(ctx, c.dialect.InsertAggregateSnapshot(), plan.Migration, a.Name, k, v, dialect.Stamp(now)); err != nil {
				return "", "", fmt.Errorf("snapshot aggregates: %w", err)
			}
			label := a.Name
			if k != "" {
				label += "[" + groupOf(k).Label() + "]"
			}
			summary = append(summary, label+" = "+v)
		}
	}
	if err := ledger.Record(ctx, c.in(tx), ledger.Event{Migration: plan.Migration, Kind: "aggregates-snapshot", Accepted: true, Actor: "gate",
		ToPhase: ledger.Expanded.String(), Reason: "old sides at the expand: " + strings.Join(summary, ", "), At: now}); err != nil {
		return "", "", fmt.Errorf("snapshot aggregates: %w", err)
	}
	return "aggregates", "", nil
}

// compareAggregates computes each aggregate's sides in tx and compares
// them, and with the snapshot.
func (c *Coordinator) compareAggregates(ctx context.Context, tx *sqlx.Tx, plan Plan, to ledger.Phase, now time.Time) (AggregateComparison, error) {
	snap, err := c.readSnapshot(ctx, tx, plan.Migration)
	if err != nil {
		return AggregateComparison{}, err
	}
	cmp := AggregateComparison{Migration: plan.Migration, Phase: to.String(), At: now, Passed: true}
	for _, a := range plan.Aggregates {
		res := AggregateResult{Name: a.Name, Kind: a.Kind, Old: a.Old.String(), New: a.New.String(), Tolerance: a.Tolerance,
			Grouped: a.Old.GroupBy != "", Against: "old"}
		if at, ok := snap.at[a.Name]; ok {
			res.SnapshotAt = &at
		}
		oldV, oldThere, err := c.computeSide(ctx, tx, a, a.Old)
		if err != nil {
			return AggregateComparison{}, err
		}
		newV, newThere, err := c.computeSide(ctx, tx, a, a.New)
		if err != nil {
			return AggregateComparison{}, err
		}
		snapV, snapThere := snap.values[a.Name]
		ref := oldV
		if !oldThere {
			res.Against, ref = "snapshot", snapV
		}
		switch {
		case !newThere:
			res.Problem = "the new side " + a.New.String() + " is not there"
		case !oldThere && !snapThere:
			res.Problem = "the old side " + a.Old.String() + " is gone and no snapshot was taken at the expand"
		default:
			res.Groups, res.Worst, err = compareGroups(a, res.Grouped, oldV, newV, snapV, ref)
			if err != nil {
				return AggregateComparison{}, fmt.Errorf("aggregate %q: %w", a.Name, err)
			}
		}
		res.Passed = res.Problem == "" && res.Worst == nil
		cmp.Passed = cmp.Passed && res.Passed
		cmp.Aggregates = append(cmp.Aggregates, res)
	}
	return cmp, nil
}

// compareGroups compares new with ref, group by group (a group missing
// on one side is 0 there), and with the snapshot, and returns the groups
// and the failing one of the largest difference (nil when all pass).
func compareGroups(a Aggregate, grouped bool, oldV, newV, snapV, ref aggregateValues) ([]AggregateGroup, *AggregateGroup, error) {
	keys := map[string]bool{}
	for _, m := range []aggregateValues{oldV, newV, snapV} {
		for k := range m {
			keys[k] = true
		}
	}
	if !grouped && len(keys) == 0 {
		keys[""] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	var groups []AggregateGroup
	var worst *AggregateGroup
	for _, k := range sorted {
		g := groupOf(k)
		g.Old, g.New, g.Snapshot = oldV[k], newV[k], snapV[k]
		n, err := number(g.New)
		if err != nil {
			return nil, nil, err
		}
		r, err := number(ref[k])
		if err != nil {
			return nil, nil, err
		}
		g.diff = new(big.Rat).Sub(n, r)
		g.Difference = decimal(g.diff, g.New, ref[k])
		g.Within = within(g.diff, r, a.Tolerance)
		if snapV != nil {
			s, err := number(g.Snapshot)
			if err != nil {
				return nil, nil, err
			}
			g.SnapshotDifference = decimal(new(big.Rat).Sub(n, s), g.New, g.Snapshot)
		}
		groups = append(groups, g)
		if !g.Within && (worst == nil || new(big.Rat).Abs(g.diff).Cmp(new(big.Rat).Abs(worst.diff)) > 0) {
			w := g
			worst = &w
		}
	}
	return groups, worst, nil
}

// number reads a value the database spelt as text ("" is 0: no such
// group), exactly: a sum of decimals is compared digit for digit.
func number(s string) (*big.Rat, error) {
	if s == "" {
		return new(big.Rat), nil
	}
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return nil, fmt.Errorf("the value %q is not a number", s)
	}
	return r, nil
}

// decimal spells d with as many decimals as the more precise of a and b
// (the values it is the difference of).
func decimal(d *big.Rat, a, b string) string {
	places := 0
	for _, s := range []string{a, b} {
		if strings.ContainsAny(s, "eE") {
			f, _ := d.Float64()
			return fmt.Sprintf("%g", f)
		}
		if _, frac, ok := strings.Cut(s, "."); ok {
			places = max(places, len(frac))
		}
	}
	return d.FloatString(places)
}

// within says whether the difference diff from ref is allowed by t.
func within(diff, ref *big.Rat, t Tolerance) bool {
	d := new(big.Rat).Abs(diff)
	if d.Sign() == 0 {
		return true
	}
	if t.Absolute > 0 && d.Cmp(new(big.Rat).SetFloat64(t.Absolute)) <= 0 {
		return true
	}
	if t.Relative > 0 {
		allowed := new(big.Rat).Mul(new(big.Rat).Abs(ref), new(big.Rat).SetFloat64(t.Relative))
		return d.Cmp(allowed) <= 0
	}
	return false
}

// LastAggregateComparison reads the last comparison of the migration's
// aggregates an advance made (from the audit trail), or nil when none
// was made.
func (c *Coordinator) LastAggregateComparison(ctx context.Context, migration string) (*AggregateComparison, error) {
	return c.lastComparison(ctx, c.db, migration)
}

// lastComparison is LastAggregateComparison read through q (a check's
// transaction: on a pool of one connection, the pool has no other).
func (c *Coordinator) lastComparison(ctx context.Context, q sqlx.QueryerContext, migration string) (*AggregateComparison, error) {
	var (
		reason   string
		accepted bool
		at       dialect.Time
	)
	err := q.QueryRowxContext(ctx, c.dialect.LastAggregateComparison(), migration).Scan(&reason, &accepted, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last aggregate comparison of %s: %w", migration, err)
	}
	var cmp AggregateComparison
	if err := json.Unmarshal([]byte(reason), &cmp); err != nil {
		return nil, fmt.Errorf("read the last aggregate comparison of %s: %w", migration, err)
	}
	return &cmp, nil
}
