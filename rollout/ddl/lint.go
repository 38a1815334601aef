package ddl

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
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
	// RuleUnknownRule: a silencing comment names no rule.
	RuleUnknownRule Rule = "unknown-rule"
	// RuleUnlinted: a DO block or a statement the linter cannot see into.
	RuleUnlinted Rule = "unlinted"
)

// rules holds each rule's safe alternative.
var rules = map[Rule]string{
	RuleIndexNotConcurrent:           "CREATE INDEX CONCURRENTLY, outside a transaction: a plain CREATE INDEX blocks every write to the table for the whole build",
	RuleConcurrentIndexInTransaction: "run CREATE/DROP INDEX CONCURRENTLY on its own, outside BEGIN … COMMIT (PostgreSQL refuses it inside a transaction block)",
	RuleConstraintNotValid:           "ADD CONSTRAINT … NOT VALID, then ALTER TABLE … VALIDATE CONSTRAINT in a separate step: validation then takes only a SHARE UPDATE EXCLUSIVE lock",
	RuleSetNotNull:                   "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT c, then SET NOT NULL (PostgreSQL 12+ uses the validated check and skips the scan), then drop the check",
	RuleColumnTypeChange:             "add a column of the new type, dual-write, backfill, switch reads, and drop the old column in the contract: a type change rewrites the table under an ACCESS EXCLUSIVE lock",
	RuleRename:                       "add the new column (or table), dual-write and backfill, and drop the old one in the contract: a rename breaks every running instance that still uses the old name",
	RuleDropInExpand:                 "drop in the contract step, once every instance runs complete and no old-path call is seen",
	RuleNotNullWithoutDefault:        "add the column nullable (or with a constant DEFAULT), backfill it, then set NOT NULL through a validated CHECK",
	RuleVolatileDefault:              "add the column without a default, SET DEFAULT separately, and backfill existing rows in chunks: a volatile default rewrites the whole table",
	RuleMissingLockTimeout:           "SET lock_timeout = '2s' first (the rollout executor sets it for you): a DDL waiting for its lock queues every later query behind it",
	RuleUniqueWithoutIndex:           "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … UNIQUE USING INDEX: building the index inside ALTER TABLE blocks writes",
	RuleJSONType:                     "use jsonb: json keeps the text as written, cannot be indexed or compared, and json columns break DISTINCT and UNION",
	RuleIdentifierTooLong:            "shorten the name to 63 bytes: PostgreSQL silently truncates longer identifiers, so two names can collide",
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
	parsed, err := parse(script)
	if err != nil {
		return nil, fmt.Errorf("parse DDL: %w", err)
	}
	// The parser truncates identifiers to 63 bytes, so long ones are found
	// among the scanner's tokens, by their length in the source.
	scanned, err := scan(script)
	if err != nil {
		return nil, fmt.Errorf("scan DDL: %w", err)
	}
	l := linter{script: script, step: step, created: map[string]bool{}}
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
	script      string
	step        Step
	findings    []Finding
	created     map[string]bool // tables created earlier in the script: empty, nobody else uses them yet
	inTx        bool
	lockTimeout bool
	validated   map[string]bool // tables with a VALIDATE CONSTRAINT earlier in the script

	// per statement
	text, span   string
	offset       int
	silenced     map[Rule]bool
	reportedLock bool
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
		if strings.EqualFold(n.GetVariableSetStmt().Name, "lock_timeout") {
			l.lockTimeout = true
		}
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
		if ds.RemoveType == pg.ObjectType_OBJECT_INDEX && ds.Concurrent && l.inTx {
			l.report(RuleConcurrentIndexInTransaction, "DROP INDEX CONCURRENTLY inside a transaction block")
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
	if l.lockTimeout || l.reportedLock || l.isNew(rv) {
		return
	}
	l.reportedLock = true
	l.report(RuleMissingLockTimeout, fmt.Sprintf("takes a lock on %s with no lock_timeout set before it", relName(rv)))
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
		case pg.ConstrType_CONSTR_IDENTITY, pg.ConstrType_CONSTR_GENERATED:
			hasDefault = true
			if con.Contype == pg.ConstrType_CONSTR_GENERATED {
				l.report(RuleVolatileDefault, fmt.Sprintf("column %s is GENERATED … STORED: adding it rewrites the table", cd.Colname))
			}
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
var volatile = map[string]bool{
	"random": true, "gen_random_uuid": true, "uuid_generate_v1": true, "uuid_generate_v4": true, "uuidv4": true, "uuidv7": true,
	"clock_timestamp": true, "timeofday": true, "nextval": true, "txid_current": true, "statement_timestamp": false,
	"setseed": true, "gen_random_bytes": true, "random_normal": true,
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
			if !fresh && !l.validated[table] {
				l.report(RuleSetNotNull, fmt.Sprintf("SET NOT NULL on %s.%s scans the table under an ACCESS EXCLUSIVE lock", table, cmd.Name))
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
			if l.validated == nil {
				l.validated = map[string]bool{}
			}
			l.validated[table] = true
		case pg.AlterTableType_AT_AddConstraint:
			con := cmd.Def.GetConstraint()
			if con == nil {
				continue
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
