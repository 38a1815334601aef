package ddl

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemashift/schemashift/internal/fragment"
)

// Rule names a check of the linter; silence one for a statement with a
// comment in or just before it: -- schemashift:ignore rule-name[, …].
type Rule string

// The rules.
const (
	RuleIndexNotConcurrent           Rule = "index-not-concurrent"
	RuleConcurrentIndexInTransaction Rule = "concurrent-index-in-transaction"
	RuleConstraintNotValid           Rule = "constraint-without-not-valid"
	RuleSetNotNull                   Rule = "set-not-null"
	RuleColumnTypeChange             Rule = "column-type-change"
	RuleRename                       Rule = "rename"
	RuleDropInExpand                 Rule = "drop-in-expand"
	RuleNotNullWithoutDefault        Rule = "not-null-without-default"
	RuleVolatileDefault              Rule = "volatile-default"
	RuleMissingLockTimeout           Rule = "missing-lock-timeout"
	RuleUniqueWithoutIndex           Rule = "unique-constraint-without-index"
	RuleJSONType                     Rule = "json-instead-of-jsonb"
	RuleIdentifierTooLong            Rule = "identifier-too-long"
	RuleDropIndexNotConcurrent       Rule = "drop-index-not-concurrent"
	RuleReindexNotConcurrent         Rule = "reindex-not-concurrent"
	RuleLockTimeoutDisabled          Rule = "lock-timeout-disabled"
	// RuleUnknownRule: a silencing comment names no rule.
	RuleUnknownRule Rule = "unknown-rule"
	// RuleUnlinted: a DO block or a statement the linter cannot see into.
	RuleUnlinted Rule = "unlinted"
)

// rules holds each rule's safe alternative.
var rules = map[Rule]string{
	RuleIndexNotConcurrent:           "CREATE INDEX CONCURRENTLY, outside a transaction: a plain CREATE INDEX blocks every write to the table for the whole build",
	RuleConcurrentIndexInTransaction: "run CREATE/DROP INDEX CONCURRENTLY and REINDEX CONCURRENTLY on their own, outside BEGIN … COMMIT (PostgreSQL refuses them inside a transaction block)",
	RuleConstraintNotValid:           "ADD CONSTRAINT … NOT VALID, then ALTER TABLE … VALIDATE CONSTRAINT in a separate step: validation then takes only a SHARE UPDATE EXCLUSIVE lock",
	RuleSetNotNull:                   "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT c, then SET NOT NULL (PostgreSQL 12+ uses the validated check and skips the scan), then drop the check",
	RuleColumnTypeChange:             "add a column of the new type, dual-write, backfill, switch reads, and drop the old column in the contract: a type change rewrites the table under an ACCESS EXCLUSIVE lock",
	RuleRename:                       "add the new column (or table), dual-write and backfill, and drop the old one in the contract: a rename breaks every running instance that still uses the old name",
	RuleDropInExpand:                 "drop in the contract step, once every instance runs complete and no old-path call is seen",
	RuleNotNullWithoutDefault:        "add the column nullable (or with a constant DEFAULT), backfill it, then set NOT NULL through a validated CHECK",
	RuleVolatileDefault:              "add the column without a default (integer or bigint in place of serial or identity), SET DEFAULT separately (nextval of an owned sequence for a serial), and backfill existing rows in chunks: a volatile default, serial or identity column rewrites the whole table under an ACCESS EXCLUSIVE lock",
	RuleMissingLockTimeout:           "SET lock_timeout = '2s' first (the rollout executor sets it for you): a DDL waiting for its lock queues every later query behind it",
	RuleUniqueWithoutIndex:           "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … UNIQUE USING INDEX: building the index inside ALTER TABLE blocks writes",
	RuleJSONType:                     "use jsonb: json keeps the text as written, cannot be indexed or compared, and json columns break DISTINCT and UNION",
	RuleIdentifierTooLong:            "shorten the name to 63 bytes: PostgreSQL silently truncates longer identifiers, so two names can collide",
	RuleDropIndexNotConcurrent:       "DROP INDEX CONCURRENTLY, outside a transaction: a plain DROP INDEX takes an ACCESS EXCLUSIVE lock on the index's table, so every read and write of the table waits behind it",
	RuleReindexNotConcurrent:         "REINDEX … CONCURRENTLY (PostgreSQL 12+), outside a transaction: a plain REINDEX blocks every write to the table, and every query that would use the index, for the whole rebuild",
	RuleLockTimeoutDisabled:          "keep a lock_timeout such as '2s' (the rollout executor sets it for you) and retry on timeout: with lock_timeout 0 a DDL waits for its lock forever and queues every later query on the table behind it",
	RuleUnknownRule:                  "name one of the rules in the silencing comment",
	RuleUnlinted:                     "move the DDL out of the DO block so that it can be checked, or review it by hand",
}

// Rules returns every rule name.
func Rules() []Rule {
	out := make([]Rule, 0, len(rules))
	for r := range rules {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Step says which step of a rollout a script is, for the rules that depend
// on it.
type Step int

// The steps.
const (
	ExpandStep Step = iota
	ContractStep
)

// Finding is one problem in a script.
type Finding struct {
	Rule      Rule
	Message   string
	Statement string // the statement's text
	Line      int    // 1-based, where the statement starts
	Column    int
	Fix       string // the safe alternative
}

func (f Finding) String() string {
	return fmt.Sprintf("%d:%d: %s: %s\n\t%s\n\tinstead: %s", f.Line, f.Column, f.Rule, f.Message, oneLine(f.Statement), f.Fix)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

var silence = regexp.MustCompile(`schemashift:ignore\s+([A-Za-z0-9_-]+(?:\s*,\s*[A-Za-z0-9_-]+)*)`)

// Lint parses script with PostgreSQL's own parser (libpg_query) and
// reports unsafe DDL. A script that does not parse is an error.
func Lint(script string, step Step) ([]Finding, error) {
	parsed, err := fragment.Parse(script)
	if err != nil {
		return nil, fmt.Errorf("parse DDL: %w", err)
	}
	// The parser truncates identifiers to 63 bytes, so long ones are found
	// among the scanner's tokens, by their length in the source.
	scanned, err := fragment.Scan(script)
	if err != nil {
		return nil, fmt.Errorf("scan DDL: %w", err)
	}
	l := linter{script: script, step: step, created: map[string]bool{}, createdIndexes: map[indexName]bool{}, checks: map[string]map[string]nullCheck{}}
	for _, raw := range parsed.Stmts {
		l.statement(raw)
		l.longIdentifiers(raw, scanned.Tokens)
	}
	return l.findings, nil
}

// longIdentifiers reports identifiers of the statement over 63 bytes.
func (l *linter) longIdentifiers(raw *pg.RawStmt, tokens []*pg.ScanToken) {
	start := int(raw.StmtLocation)
	end := len(l.script)
	if raw.StmtLen > 0 {
		end = start + int(raw.StmtLen)
	}
	for _, tok := range tokens {
		if int(tok.Start) < start || int(tok.End) > end || tok.Token != pg.Token_IDENT {
			continue
		}
		name := l.script[tok.Start:tok.End]
		if strings.HasPrefix(name, `"`) {
			name = strings.ReplaceAll(strings.Trim(name, `"`), `""`, `"`)
		}
		if len(name) > 63 {
			l.report(RuleIdentifierTooLong, fmt.Sprintf("identifier %s… is %d bytes; PostgreSQL keeps the first 63", name[:20], len(name)))
		}
	}
}

type linter struct {
	script         string
	step           Step
	findings       []Finding
	created        map[string]bool    // tables created earlier in the script: empty, nobody else uses them yet
	createdIndexes map[indexName]bool // indexes the script built on tables it created
	inTx           bool
	lockTimeout    bool
	reportedLock   bool                            // missing-lock-timeout is reported once per script
	checks         map[string]map[string]nullCheck // table → CHECK constraint added earlier in the script

	// per statement
	text, span string
	offset     int
	silenced   map[Rule]bool
}

func (l *linter) statement(raw *pg.RawStmt) {
	start := int(raw.StmtLocation)
	end := len(l.script)
	if raw.StmtLen > 0 {
		end = start + int(raw.StmtLen)
	}
	l.span = l.script[start:end]
	lead := len(l.span) - len(strings.TrimLeft(l.span, " \t\r\n"))
	l.text = strings.TrimSpace(stripLeadingComments(l.span))
	l.offset = start + lead + strings.Index(l.span[lead:], l.text)
	l.silenced = map[Rule]bool{}
	for _, m := range silence.FindAllStringSubmatch(l.span, -1) {
		for name := range strings.SplitSeq(m[1], ",") {
			r := Rule(strings.TrimSpace(name))
			if _, ok := rules[r]; !ok {
				l.report(RuleUnknownRule, fmt.Sprintf("the comment silences %q, which is not a rule (rules: %s)", r, joinRules()))
				continue
			}
			l.silenced[r] = true
		}
	}
	n := raw.Stmt
	switch {
	case n.GetTransactionStmt() != nil:
		switch n.GetTransactionStmt().Kind {
		case pg.TransactionStmtKind_TRANS_STMT_BEGIN, pg.TransactionStmtKind_TRANS_STMT_START:
			l.inTx = true
		case pg.TransactionStmtKind_TRANS_STMT_COMMIT, pg.TransactionStmtKind_TRANS_STMT_ROLLBACK:
			l.inTx = false
		}
	case n.GetVariableSetStmt() != nil:
		l.variableSet(n.GetVariableSetStmt())
	case n.GetSelectStmt() != nil:
		l.setConfig(n)
	case n.GetReindexStmt() != nil:
		l.reindex(n.GetReindexStmt())
	case n.GetDoStmt() != nil:
		l.report(RuleUnlinted, "statements inside a DO block are not linted")
	case n.GetCreateStmt() != nil:
		l.createTable(n.GetCreateStmt())
	case n.GetIndexStmt() != nil:
		l.index(n.GetIndexStmt())
	case n.GetAlterTableStmt() != nil:
		l.alterTable(n.GetAlterTableStmt())
	case n.GetRenameStmt() != nil:
		rs := n.GetRenameStmt()
		if rs.RenameType == pg.ObjectType_OBJECT_COLUMN || rs.RenameType == pg.ObjectType_OBJECT_TABLE {
			what := "column " + rs.Subname
			if rs.RenameType == pg.ObjectType_OBJECT_TABLE {
				what = "table " + relName(rs.Relation)
			}
			l.needLockTimeout(rs.Relation)
			l.report(RuleRename, fmt.Sprintf("renames %s to %s", what, rs.Newname))
		}
	case n.GetDropStmt() != nil:
		ds := n.GetDropStmt()
		if ds.RemoveType == pg.ObjectType_OBJECT_TABLE && l.step == ExpandStep {
			l.report(RuleDropInExpand, "drops a table in an expand step")
		}
		if ds.RemoveType == pg.ObjectType_OBJECT_INDEX {
			l.dropIndex(ds)
		}
	}
}

func joinRules() string {
	var names []string
	for _, r := range Rules() {
		if r != RuleUnknownRule && r != RuleUnlinted {
			names = append(names, string(r))
		}
	}
	return strings.Join(names, ", ")
}

// stripLeadingComments drops the comments before a statement.
func stripLeadingComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
			} else {
				return ""
			}
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s, "*/"); i >= 0 {
				s = s[i+2:]
			} else {
				return ""
			}
		default:
			return s
		}
	}
}

func (l *linter) report(r Rule, msg string) {
	if l.silenced[r] {
		return
	}
	line := 1 + strings.Count(l.script[:l.offset], "\n")
	col := l.offset - strings.LastIndexByte(l.script[:l.offset], '\n')
	l.findings = append(l.findings, Finding{Rule: r, Message: msg, Statement: l.text, Line: line, Column: col, Fix: rules[r]})
}

func relName(rv *pg.RangeVar) string {
	if rv == nil {
		return ""
	}
	if rv.Schemaname != "" {
		return rv.Schemaname + "." + rv.Relname
	}
	return rv.Relname
}

func (l *linter) isNew(rv *pg.RangeVar) bool { return rv != nil && l.created[relName(rv)] }

// needLockTimeout reports, once per script, DDL on an existing table with
// no lock_timeout set before it.
func (l *linter) needLockTimeout(rv *pg.RangeVar) {
	if l.isNew(rv) {
		return
	}
	l.needLockTimeoutOn(relName(rv))
}

// needLockTimeoutOn is needLockTimeout for an object known by name (an
// index), which the caller has found is not new.
func (l *linter) needLockTimeoutOn(name string) {
	if l.lockTimeout || l.reportedLock {
		return
	}
	l.reportedLock = true
	l.report(RuleMissingLockTimeout, fmt.Sprintf("takes a lock on %s with no lock_timeout set before it", name))
}

func typeName(tn *pg.TypeName) string {
	if tn == nil || len(tn.Names) == 0 {
		return ""
	}
	return tn.Names[len(tn.Names)-1].GetString_().GetSval()
}

func (l *linter) column(cd *pg.ColumnDef, newTable bool) {
	if typeName(cd.TypeName) == "json" {
		l.report(RuleJSONType, fmt.Sprintf("column %s is json", cd.Colname))
	}
	if newTable {
		return
	}
	notNull, hasDefault := cd.IsNotNull, cd.RawDefault != nil
	if tn := typeName(cd.TypeName); len(cd.TypeName.GetNames()) == 1 && serials[tn] {
		hasDefault = true
		l.report(RuleVolatileDefault, fmt.Sprintf("column %s is %s: its nextval() default gives every existing row a value, rewriting the table", cd.Colname, tn))
	}
	var def *pg.Node = cd.RawDefault
	for _, c := range cd.Constraints {
		con := c.GetConstraint()
		if con == nil {
			continue
		}
		switch con.Contype {
		case pg.ConstrType_CONSTR_NOTNULL, pg.ConstrType_CONSTR_PRIMARY:
			notNull = true
		case pg.ConstrType_CONSTR_DEFAULT:
			hasDefault, def = true, con.RawExpr
		case pg.ConstrType_CONSTR_IDENTITY:
			hasDefault = true
			l.report(RuleVolatileDefault, fmt.Sprintf("column %s is GENERATED … AS IDENTITY: every existing row takes a value from its sequence, rewriting the table", cd.Colname))
		case pg.ConstrType_CONSTR_GENERATED:
			hasDefault = true
			l.report(RuleVolatileDefault, fmt.Sprintf("column %s is GENERATED … STORED: adding it rewrites the table", cd.Colname))
		}
	}
	if notNull && !hasDefault {
		l.report(RuleNotNullWithoutDefault, fmt.Sprintf("adds NOT NULL column %s with no default: it fails on a table with rows, or locks it to rewrite", cd.Colname))
	}
	if def != nil {
		if fn := volatileCall(def); fn != "" {
			l.report(RuleVolatileDefault, fmt.Sprintf("column %s defaults to %s(), which is volatile: every existing row is rewritten", cd.Colname, fn))
		}
	}
}

// volatile lists well-known volatile functions; a default calling one
// forces a table rewrite (non-volatile defaults are stored once, PG 11+).
// Stable ones such as now(), statement_timestamp() and txid_current() are
// evaluated once for the ADD COLUMN and do not rewrite.
var volatile = map[string]bool{
	"random": true, "gen_random_uuid": true, "uuid_generate_v1": true, "uuid_generate_v1mc": true, "uuid_generate_v4": true, "uuidv4": true, "uuidv7": true,
	"clock_timestamp": true, "timeofday": true, "nextval": true,
	"setseed": true, "gen_random_bytes": true, "random_normal": true,
}

// serials are the pseudo-types that add a sequence and a nextval() default.
var serials = map[string]bool{
	"smallserial": true, "serial": true, "bigserial": true, "serial2": true, "serial4": true, "serial8": true,
}

// volatileCall returns the name of a volatile function the expression
// calls, or "".
func volatileCall(n *pg.Node) string {
	found := ""
	walk(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if fc, ok := m.Interface().(*pg.FuncCall); ok && len(fc.Funcname) > 0 {
			name := strings.ToLower(fc.Funcname[len(fc.Funcname)-1].GetString_().GetSval())
			if volatile[name] {
				found = name
				return false
			}
		}
		return true
	})
	return found
}

// walk visits every message under m until fn returns false.
func walk(m protoreflect.Message, fn func(protoreflect.Message) bool) bool {
	if !fn(m) {
		return false
	}
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := range list.Len() {
				if !walk(list.Get(i).Message(), fn) {
					ok = false
					return false
				}
			}
		case fd.Message() != nil && !fd.IsMap():
			if !walk(v.Message(), fn) {
				ok = false
				return false
			}
		}
		return true
	})
	return ok
}

func (l *linter) createTable(cs *pg.CreateStmt) {
	name := relName(cs.Relation)
	for _, e := range cs.TableElts {
		if cd := e.GetColumnDef(); cd != nil {
			l.column(cd, true)
		}
	}
	l.created[name] = true
}

func (l *linter) index(is *pg.IndexStmt) {
	if is.Concurrent {
		if l.inTx {
			l.report(RuleConcurrentIndexInTransaction, "CREATE INDEX CONCURRENTLY inside a transaction block")
		}
		return
	}
	if l.isNew(is.Relation) {
		if is.Idxname != "" {
			l.createdIndexes[indexName{is.Relation.Schemaname, is.Idxname}] = true
		}
		return
	}
	l.needLockTimeout(is.Relation)
	l.report(RuleIndexNotConcurrent, fmt.Sprintf("builds index %s on %s without CONCURRENTLY", is.Idxname, relName(is.Relation)))
}

func (l *linter) alterTable(at *pg.AlterTableStmt) {
	table := relName(at.Relation)
	fresh := l.isNew(at.Relation)
	if !fresh && len(at.Cmds) > 0 {
		onlyValidate := true
		for _, c := range at.Cmds {
			if c.GetAlterTableCmd().GetSubtype() != pg.AlterTableType_AT_ValidateConstraint {
				onlyValidate = false
			}
		}
		if !onlyValidate {
			l.needLockTimeout(at.Relation)
		}
	}
	for _, c := range at.Cmds {
		cmd := c.GetAlterTableCmd()
		if cmd == nil {
			continue
		}
		switch cmd.Subtype {
		case pg.AlterTableType_AT_AddColumn:
			if cd := cmd.Def.GetColumnDef(); cd != nil {
				l.column(cd, fresh)
			}
		case pg.AlterTableType_AT_SetNotNull:
			if !fresh && !l.provenNotNull(table, cmd.Name) {
				l.report(RuleSetNotNull, fmt.Sprintf("SET NOT NULL on %s.%s scans the table under an ACCESS EXCLUSIVE lock: no validated CHECK (%s IS NOT NULL) on %s precedes it in the script", table, cmd.Name, cmd.Name, table))
			}
		case pg.AlterTableType_AT_AlterColumnType:
			if !fresh {
				l.report(RuleColumnTypeChange, fmt.Sprintf("changes the type of %s.%s", table, cmd.Name))
			}
			if cd := cmd.Def.GetColumnDef(); cd != nil && typeName(cd.TypeName) == "json" {
				l.report(RuleJSONType, fmt.Sprintf("column %s becomes json", cmd.Name))
			}
		case pg.AlterTableType_AT_DropColumn:
			if l.step == ExpandStep {
				l.report(RuleDropInExpand, fmt.Sprintf("drops column %s.%s in an expand step", table, cmd.Name))
			}
		case pg.AlterTableType_AT_ValidateConstraint:
			if c, ok := l.checks[table][cmd.Name]; ok {
				c.validated = true
				l.checks[table][cmd.Name] = c
			}
		case pg.AlterTableType_AT_DropConstraint:
			delete(l.checks[table], cmd.Name)
		case pg.AlterTableType_AT_AddConstraint:
			con := cmd.Def.GetConstraint()
			if con == nil {
				continue
			}
			if con.Contype == pg.ConstrType_CONSTR_CHECK {
				l.addCheck(table, con)
			}
			if fresh {
				continue
			}
			switch con.Contype {
			case pg.ConstrType_CONSTR_FOREIGN, pg.ConstrType_CONSTR_CHECK:
				if !con.SkipValidation {
					l.report(RuleConstraintNotValid, fmt.Sprintf("adds constraint %s to %s and validates it under the lock", con.Conname, table))
				}
			case pg.ConstrType_CONSTR_UNIQUE, pg.ConstrType_CONSTR_PRIMARY:
				if con.Indexname == "" {
					l.report(RuleUniqueWithoutIndex, fmt.Sprintf("adds a unique constraint to %s by building its index under the lock", table))
				}
			}
		}
	}
}

// indexName is an index as CREATE INDEX and DROP INDEX spell it: the
// schema it lives in (its table's) if given, and its name.
type indexName struct{ schema, name string }

func (n indexName) String() string {
	if n.schema != "" {
		return n.schema + "." + n.name
	}
	return n.name
}

// indexNameOf reads a name as DROP INDEX and REINDEX give it:
// [[catalog.]schema.]name.
func indexNameOf(parts []string) indexName {
	switch len(parts) {
	case 0:
		return indexName{}
	case 1:
		return indexName{name: parts[0]}
	}
	return indexName{schema: parts[len(parts)-2], name: parts[len(parts)-1]}
}

// dropIndex reports a DROP INDEX of an existing table's index without
// CONCURRENTLY, and a concurrent one inside a transaction block.
func (l *linter) dropIndex(ds *pg.DropStmt) {
	if ds.Concurrent {
		if l.inTx {
			l.report(RuleConcurrentIndexInTransaction, "DROP INDEX CONCURRENTLY inside a transaction block")
		}
		return
	}
	var existing []string
	for _, o := range ds.Objects {
		var parts []string
		for _, p := range o.GetList().GetItems() {
			parts = append(parts, p.GetString_().GetSval())
		}
		if name := indexNameOf(parts); name.name != "" && !l.createdIndexes[name] {
			existing = append(existing, name.String())
		}
	}
	if len(existing) == 0 {
		return // only indexes of tables the script created
	}
	l.needLockTimeoutOn(existing[0])
	l.report(RuleDropIndexNotConcurrent, fmt.Sprintf("drops index %s without CONCURRENTLY: it locks the index's table ACCESS EXCLUSIVE, blocking its reads and writes", strings.Join(existing, ", ")))
}

// reindex reports a REINDEX without CONCURRENTLY of anything but a table
// or index the script created.
func (l *linter) reindex(rs *pg.ReindexStmt) {
	concurrent := false
	for _, p := range rs.Params {
		if de := p.GetDefElem(); de != nil && strings.EqualFold(de.Defname, "concurrently") {
			concurrent = optionOn(de.Arg)
		}
	}
	if concurrent {
		if l.inTx {
			l.report(RuleConcurrentIndexInTransaction, "REINDEX CONCURRENTLY inside a transaction block")
		}
		return
	}
	var what string
	switch rs.Kind {
	case pg.ReindexObjectType_REINDEX_OBJECT_INDEX:
		name := indexName{rs.Relation.GetSchemaname(), rs.Relation.GetRelname()}
		if l.createdIndexes[name] {
			return
		}
		l.needLockTimeoutOn(name.String())
		what = "index " + name.String() + ": it blocks writes to its table and every query that would use the index"
	case pg.ReindexObjectType_REINDEX_OBJECT_TABLE:
		if l.isNew(rs.Relation) {
			return
		}
		l.needLockTimeout(rs.Relation)
		what = "table " + relName(rs.Relation) + ": it blocks writes to the table, and reads that use its indexes, for the whole rebuild"
	case pg.ReindexObjectType_REINDEX_OBJECT_SYSTEM:
		l.report(RuleReindexNotConcurrent, "REINDEX SYSTEM cannot run CONCURRENTLY: it locks the system catalogs, which every query reads; reindex the affected catalog indexes in a maintenance window")
		return
	default: // SCHEMA, DATABASE
		what = strings.ToLower(strings.TrimPrefix(rs.Kind.String(), "REINDEX_OBJECT_"))
		if rs.Name != "" {
			what += " " + rs.Name
		}
		what += ": it blocks writes to each of its tables in turn while their indexes are rebuilt"
	}
	l.report(RuleReindexNotConcurrent, "REINDEX without CONCURRENTLY rebuilds "+what)
}

// optionOn reads a utility statement's boolean option as PostgreSQL does:
// no value means on.
func optionOn(arg *pg.Node) bool {
	if arg == nil {
		return true
	}
	v, ok := constText(arg)
	if !ok {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "false", "f", "off", "no", "n", "0":
		return false
	}
	return true
}

// constText is a constant's text ('0', 0, 0.5, '0'::text, or an option's
// bare word), if the node is one.
func constText(n *pg.Node) (string, bool) {
	switch {
	case n.GetTypeCast() != nil:
		return constText(n.GetTypeCast().Arg)
	case n.GetString_() != nil:
		return n.GetString_().GetSval(), true
	case n.GetInteger() != nil:
		return strconv.Itoa(int(n.GetInteger().GetIval())), true
	case n.GetFloat() != nil:
		return n.GetFloat().GetFval(), true
	case n.GetBoolean() != nil:
		return strconv.FormatBool(n.GetBoolean().GetBoolval()), true
	}
	c := n.GetAConst()
	if c == nil || c.Isnull {
		return "", false
	}
	switch {
	case c.GetSval() != nil:
		return c.GetSval().GetSval(), true
	case c.GetIval() != nil:
		return strconv.Itoa(int(c.GetIval().GetIval())), true
	case c.GetFval() != nil:
		return c.GetFval().GetFval(), true
	case c.GetBoolval() != nil:
		return strconv.FormatBool(c.GetBoolval().GetBoolval()), true
	}
	return "", false
}

// variableSet follows lock_timeout through SET, SET … TO DEFAULT and RESET.
func (l *linter) variableSet(vs *pg.VariableSetStmt) {
	if vs.Kind == pg.VariableSetKind_VAR_RESET_ALL {
		l.lockTimeout = false
		return
	}
	if !strings.EqualFold(vs.Name, "lock_timeout") {
		return
	}
	switch vs.Kind {
	case pg.VariableSetKind_VAR_SET_VALUE:
		if len(vs.Args) == 1 {
			if v, ok := constText(vs.Args[0]); ok {
				l.lockTimeoutTo(v)
				return
			}
		}
		l.lockTimeout = true
	case pg.VariableSetKind_VAR_SET_DEFAULT, pg.VariableSetKind_VAR_RESET:
		// Back to the role's, database's or server's setting, which the
		// script cannot see (the server's own default is 0): as if the
		// script had set none, so the next DDL needs one.
		l.lockTimeout = false
	}
}

// setConfig follows set_config('lock_timeout', value, is_local) in a SELECT.
func (l *linter) setConfig(n *pg.Node) {
	walk(n.ProtoReflect(), func(m protoreflect.Message) bool {
		fc, ok := m.Interface().(*pg.FuncCall)
		if !ok || len(fc.Funcname) == 0 || len(fc.Args) < 2 ||
			!strings.EqualFold(fc.Funcname[len(fc.Funcname)-1].GetString_().GetSval(), "set_config") {
			return true
		}
		if name, ok := constText(fc.Args[0]); !ok || !strings.EqualFold(strings.TrimSpace(name), "lock_timeout") {
			return true
		}
		if v, ok := constText(fc.Args[1]); ok {
			l.lockTimeoutTo(v)
		} else {
			l.lockTimeout = true // a value computed at run time: given the benefit of the doubt
		}
		return true
	})
}

// lockTimeoutTo records lock_timeout set to v, and reports a value that
// turns it off. The finding stands for the DDL that follows, which is not
// reported again as missing a lock_timeout.
func (l *linter) lockTimeoutTo(v string) {
	ms, ok := millis(v)
	switch {
	case !ok:
		l.lockTimeout = true // PostgreSQL refuses the value, or the linter cannot read it
	case ms < 0:
		// refused by PostgreSQL: the setting stays as it was
	case ms == 0:
		l.lockTimeout = false
		l.reportedLock = true
		l.report(RuleLockTimeoutDisabled, fmt.Sprintf("lock_timeout = %q turns the lock timeout off: the next DDL waits for its lock forever, and every later query on its table queues behind it", v))
	default:
		l.lockTimeout = true
	}
}

// millis reads a lock_timeout value as PostgreSQL does: a number,
// optionally followed by a unit, milliseconds by default, rounded to the
// nearest millisecond (so '0.4' and '100us' are 0). Hexadecimal and octal
// spellings are not read.
func millis(v string) (float64, bool) {
	v = strings.TrimSpace(v)
	isDigit := func(i int) bool { return i < len(v) && v[i] >= '0' && v[i] <= '9' }
	i := 0
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		i++
	}
	for isDigit(i) || i < len(v) && v[i] == '.' {
		i++
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		j := i + 1
		if j < len(v) && (v[j] == '+' || v[j] == '-') {
			j++
		}
		if isDigit(j) {
			for i = j; isDigit(i); i++ {
			}
		}
	}
	f, err := strconv.ParseFloat(v[:i], 64)
	if err != nil {
		return 0, false
	}
	scale := map[string]float64{"": 1, "us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
	k, ok := scale[strings.TrimSpace(v[i:])]
	if !ok {
		return 0, false
	}
	return math.RoundToEven(f * k), true
}

// nullCheck is a CHECK constraint added earlier in the script: the columns
// it proves are not null, and whether it has been validated.
type nullCheck struct {
	columns   []string
	validated bool
}

// addCheck records a CHECK constraint added to table; one added without
// NOT VALID is validated as it is added.
func (l *linter) addCheck(table string, con *pg.Constraint) {
	if l.checks[table] == nil {
		l.checks[table] = map[string]nullCheck{}
	}
	l.checks[table][con.Conname] = nullCheck{columns: notNullColumns(con.RawExpr), validated: !con.SkipValidation}
}

// provenNotNull says whether a validated CHECK on table proves column is
// not null, which lets PostgreSQL 12+ SET NOT NULL without a scan.
func (l *linter) provenNotNull(table, column string) bool {
	for _, c := range l.checks[table] {
		if c.validated && slices.Contains(c.columns, column) {
			return true
		}
	}
	return false
}

// notNullColumns lists the columns an expression proves are not null
// whenever it is true: col IS NOT NULL and NOT (col IS NULL), alone or
// among the terms of an AND (never under an OR).
func notNullColumns(n *pg.Node) []string {
	if n == nil {
		return nil
	}
	if b := n.GetBoolExpr(); b != nil {
		switch b.Boolop {
		case pg.BoolExprType_AND_EXPR:
			var out []string
			for _, a := range b.Args {
				out = append(out, notNullColumns(a)...)
			}
			return out
		case pg.BoolExprType_NOT_EXPR:
			if len(b.Args) == 1 {
				if nt := b.Args[0].GetNullTest(); nt != nil && nt.Nulltesttype == pg.NullTestType_IS_NULL {
					return columnOf(nt.Arg)
				}
			}
		}
		return nil
	}
	if nt := n.GetNullTest(); nt != nil && nt.Nulltesttype == pg.NullTestType_IS_NOT_NULL {
		return columnOf(nt.Arg)
	}
	return nil
}

// columnOf is the column a plain column reference names (col or
// table.col), or nothing.
func columnOf(n *pg.Node) []string {
	cr := n.GetColumnRef()
	if cr == nil || len(cr.Fields) == 0 {
		return nil
	}
	name := cr.Fields[len(cr.Fields)-1].GetString_()
	if name == nil {
		return nil // table.*
	}
	return []string{name.GetSval()}
}
