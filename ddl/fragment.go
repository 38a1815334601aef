package ddl

import (
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialects"
	"github.com/schemashift/schemashift/internal/fragment"
)

// ErrFragment is wrapped by the error of an operation whose SQL fragment
// (AddColumn.Type or .Default, AddCheck.Expr, CreateIndex.Where,
// AddTable.Columns) is not exactly what its field holds. It wraps
// [ErrInvalidOp].
var ErrFragment = fmt.Errorf("%w: SQL fragment refused", ErrInvalidOp)

// A slot is the place of a fragment in the statement an operation
// renders: the fragment is checked where it will run, between the same
// words, so that it cannot read differently there.
type slot struct {
	what           string // what the fragment must be: "one type name", …
	prefix, suffix string // the statement around it, with placeholder names
	fits           string // a fragment known to fit, for the statement's expected shape
	// take removes the fragment's nodes from the parsed statement and
	// returns them, or a reason when the statement has another shape.
	take func(*pg.Node) ([]proto.Message, string)
}

// addedColumn is the column of ALTER TABLE … ADD COLUMN, nil when the
// statement is anything else.
func addedColumn(n *pg.Node) *pg.ColumnDef {
	cmds := n.GetAlterTableStmt().GetCmds()
	if len(cmds) != 1 || cmds[0].GetAlterTableCmd().GetSubtype() != pg.AlterTableType_AT_AddColumn {
		return nil
	}
	return cmds[0].GetAlterTableCmd().GetDef().GetColumnDef()
}

var typeSlot = slot{
	what:   "one type name",
	prefix: "ALTER TABLE t ADD COLUMN IF NOT EXISTS c ",
	fits:   "int",
	take: func(n *pg.Node) ([]proto.Message, string) {
		cd := addedColumn(n)
		if cd.GetTypeName() == nil {
			return nil, "is not one added column"
		}
		tn := cd.TypeName
		cd.TypeName = nil
		return []proto.Message{tn}, ""
	},
}

// defaultSlot is a constant default in ADD COLUMN, after the column's
// type (checked before, and part of the statement as it will run).
func defaultSlot(typ string) slot {
	return slot{
		what:   "one expression",
		prefix: "ALTER TABLE t ADD COLUMN IF NOT EXISTS c " + typ + " DEFAULT ",
		fits:   "NULL",
		take: func(n *pg.Node) ([]proto.Message, string) {
			cs := addedColumn(n).GetConstraints()
			if len(cs) == 0 || cs[0].GetConstraint().GetContype() != pg.ConstrType_CONSTR_DEFAULT || cs[0].GetConstraint().GetRawExpr() == nil {
				return nil, "is not a default"
			}
			e := cs[0].GetConstraint().RawExpr
			cs[0].GetConstraint().RawExpr = nil
			return []proto.Message{e}, ""
		},
	}
}

// setDefaultSlot is a volatile default, set after the column is added.
var setDefaultSlot = slot{
	what:   "one expression",
	prefix: "ALTER TABLE t ALTER COLUMN c SET DEFAULT ",
	fits:   "NULL",
	take: func(n *pg.Node) ([]proto.Message, string) {
		cmds := n.GetAlterTableStmt().GetCmds()
		if len(cmds) != 1 || cmds[0].GetAlterTableCmd().GetSubtype() != pg.AlterTableType_AT_ColumnDefault || cmds[0].GetAlterTableCmd().GetDef() == nil {
			return nil, "is not a default"
		}
		e := cmds[0].GetAlterTableCmd().Def
		cmds[0].GetAlterTableCmd().Def = nil
		return []proto.Message{e}, ""
	},
}

var checkSlot = slot{
	what:   "one expression",
	prefix: "ALTER TABLE t ADD CONSTRAINT n CHECK (",
	suffix: ") NOT VALID",
	fits:   "true",
	take: func(n *pg.Node) ([]proto.Message, string) {
		cmds := n.GetAlterTableStmt().GetCmds()
		if len(cmds) != 1 {
			return nil, "is not a check"
		}
		c := cmds[0].GetAlterTableCmd().GetDef().GetConstraint()
		if c.GetContype() != pg.ConstrType_CONSTR_CHECK || c.GetRawExpr() == nil {
			return nil, "is not a check"
		}
		e := c.RawExpr
		c.RawExpr = nil
		return []proto.Message{e}, ""
	},
}

var whereSlot = slot{
	what:   "one expression",
	prefix: "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (c) WHERE ",
	fits:   "true",
	take: func(n *pg.Node) ([]proto.Message, string) {
		is := n.GetIndexStmt()
		if is.GetWhereClause() == nil {
			return nil, "is not an index predicate"
		}
		e := is.WhereClause
		is.WhereClause = nil
		return []proto.Message{e}, ""
	},
}

var columnsSlot = slot{
	what:   "column definitions and table constraints",
	prefix: "CREATE TABLE IF NOT EXISTS t (",
	suffix: ")",
	fits:   "c int",
	take: func(n *pg.Node) ([]proto.Message, string) {
		cs := n.GetCreateStmt()
		if len(cs.GetTableElts()) == 0 {
			return nil, "is not a column list"
		}
		out := make([]proto.Message, len(cs.TableElts))
		for i, e := range cs.TableElts {
			if e.GetColumnDef() == nil && e.GetConstraint() == nil {
				return nil, fmt.Sprintf("holds a %s, not a column definition or a table constraint", nodeName(e))
			}
			out[i] = e
		}
		cs.TableElts = nil
		return out, ""
	},
}

// checkFragment checks s as the fragment of the field named (Type, Expr,
// Where, Columns, in any case) and returns it trimmed.
func checkFragment(field, s string) (string, error) {
	switch strings.ToLower(field) {
	case "type":
		return fit("Type", typeSlot, s)
	case "expr", "check":
		return fit("Expr", checkSlot, s)
	case "where":
		return fit("Where", whereSlot, s)
	case "columns":
		return fit("Columns", columnsSlot, s)
	}
	return "", fmt.Errorf("%w: no SQL fragment field %q", ErrInvalidOp, field)
}

// fit checks that s, trimmed, is exactly what sl holds and returns it
// trimmed, or an error naming field that wraps [ErrFragment]:
//
//   - it reads the same to every reader of the statement (see lexical);
//   - the statement with s in its place parses, as PostgreSQL's parser
//     reads it, to exactly one statement, shaped as it is with a fragment
//     known to fit, once the fragment's nodes are taken out: s added no
//     clause, command, constraint, column or statement of its own;
//   - every node of the slot comes from s's text, and no other node does;
//   - it holds no subquery.
func fit(field string, sl slot, s string) (string, error) {
	s = strings.TrimSpace(s)
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %q %s", field, ErrFragment, fragment.Short(s), fmt.Sprintf(format, args...))
	}
	if s == "" {
		return "", fmt.Errorf("%s: %w: empty", field, ErrFragment)
	}
	if why := fragment.Lexical(s, everyReader()); why != "" {
		return "", refuse("%s", why)
	}
	stmt, err := fragment.Parse(sl.prefix + s + sl.suffix)
	if err != nil {
		return "", refuse("is not %s: %v", sl.what, err)
	}
	if len(stmt.GetStmts()) != 1 {
		return "", refuse("is not %s: it makes %d statements", sl.what, len(stmt.GetStmts()))
	}
	want, err := fragment.Parse(sl.prefix + sl.fits + sl.suffix)
	if err != nil || len(want.GetStmts()) != 1 {
		return "", fmt.Errorf("%s: check %s: the reference statement does not parse: %v", field, sl.what, err)
	}
	got, ref := stmt.Stmts[0].GetStmt(), want.Stmts[0].GetStmt()
	nodes, why := sl.take(got)
	if why != "" {
		return "", refuse("is not %s: the statement it makes %s", sl.what, why)
	}
	if _, why := sl.take(ref); why != "" {
		return "", fmt.Errorf("%s: check %s: the reference statement %s", field, sl.what, why)
	}
	// Offsets in the statement where s starts and ends.
	from, to := int32(len(sl.prefix)), int32(len(sl.prefix)+len(s))
	for _, n := range nodes {
		for _, at := range locations(n.ProtoReflect()) {
			if at >= 0 && (at < from || at >= to) {
				return "", refuse("is not %s: part of it comes from the statement around it", sl.what)
			}
		}
	}
	for _, at := range locations(got.ProtoReflect()) {
		if at >= from && at < to {
			return "", refuse("holds more than %s", sl.what)
		}
	}
	clearLocations(got.ProtoReflect())
	clearLocations(ref.ProtoReflect())
	if !proto.Equal(got, ref) {
		return "", refuse("holds more than %s", sl.what)
	}
	for _, n := range nodes {
		if found := find(n.ProtoReflect(), func(m protoreflect.Message) bool {
			_, ok := m.Interface().(*pg.SubLink)
			return ok
		}); found {
			return "", refuse("holds a subquery")
		}
	}
	return s, nil
}

// everyReader is every database an operation's fragment may go into:
// the operations render the same fragment into each one's DDL.
func everyReader() []dialect.Rendering {
	var out []dialect.Rendering
	for _, d := range dialects.All() {
		out = append(out, d)
	}
	return out
}

// locations returns the source offsets of every node under m.
func locations(m protoreflect.Message) []int32 {
	var out []int32
	find(m, func(m protoreflect.Message) bool {
		if fd := m.Descriptor().Fields().ByName("location"); fd != nil && fd.Kind() == protoreflect.Int32Kind {
			out = append(out, int32(m.Get(fd).Int()))
		}
		return false
	})
	return out
}

// clearLocations zeroes the source offsets under m, so that two trees
// compare by their shape alone.
func clearLocations(m protoreflect.Message) {
	find(m, func(m protoreflect.Message) bool {
		if fd := m.Descriptor().Fields().ByName("location"); fd != nil && fd.Kind() == protoreflect.Int32Kind {
			m.Clear(fd)
		}
		return false
	})
}

// find visits every message under m, m first, until match returns true,
// and reports whether it did.
func find(m protoreflect.Message, match func(protoreflect.Message) bool) bool {
	if match(m) {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := range list.Len() {
				if find(list.Get(i).Message(), match) {
					found = true
					return false
				}
			}
		case fd.Message() != nil && !fd.IsMap():
			if find(v.Message(), match) {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// nodeName names the kind of a parse node ("table_like_clause").
func nodeName(n *pg.Node) string {
	m := n.ProtoReflect()
	if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("node")); fd != nil {
		return string(fd.Name())
	}
	return "node"
}
