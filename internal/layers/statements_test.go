package layers_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dialectSQL matches what only some databases accept in a statement:
// $n parameters, ON CONFLICT, RETURNING, aggregate FILTER, IS [NOT]
// DISTINCT FROM, now(). A string of the library's public packages that
// holds one is a statement that belongs to a querier of
// internal/dialect (the dialect's own package, or internal/dialect/common
// where every supported database accepts it), which the package runs as
// d.Statement().
var dialectSQL = regexp.MustCompile(`\$[0-9]+|\bON\s+CONFLICT\b|\bRETURNING\b|\bFILTER\s*\(|\bIS\s+(NOT\s+)?DISTINCT\s+FROM\b|\bnow\(\)`)

// statementFinding is one string literal that holds dialect SQL.
type statementFinding struct {
	File string // slash-separated, relative to the module
	Line int
	Word string
}

func (f statementFinding) String() string { return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Word) }

// statementsOutsideInternal reads the non-test Go files of the module in
// dir, but for internal/, examples/ and cmd/ (the dialects themselves,
// and programs), and returns every string literal that holds dialect
// SQL, the first match of each.
func statementsOutsideInternal(t *testing.T, dir string) []statementFinding {
	t.Helper()
	var out []statementFinding
	fset := token.NewFileSet()
	skip := func(rel string) bool { return rel == "internal" || rel == "examples" || rel == "cmd" }
	sourcesIn(t, fset, dir, parser.SkipObjectResolution, skip, func(rel string, f *ast.File) error {
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if loc := dialectSQL.FindStringIndex(lit.Value); loc != nil {
				// The line of the match, not of the literal's start: a
				// statement spans lines.
				line := fset.Position(lit.Pos()).Line + strings.Count(lit.Value[:loc[0]], "\n")
				out = append(out, statementFinding{File: rel, Line: line, Word: lit.Value[loc[0]:loc[1]]})
			}
			return true
		})
		return nil
	})
	return out
}

func TestNoStatementOfADialectOutsideInternal(t *testing.T) {
	t.Parallel()
	found := statementsOutsideInternal(t, root(t))
	for _, f := range found {
		t.Errorf("%s: a statement only some databases accept: move it to a querier of internal/dialect "+
			"(internal/dialect/common, or each dialect's own package) and run d.Statement()", f)
	}
}

// The check reads what it checks: a made-up tree with such statements in
// a public package is caught, at the line of each, while a comment, a
// test, internal/, examples/ and cmd/ are not read, and an identifier
// named now is not a statement.
func TestStatementsCheckCatchesAViolation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(path, src string) { require.NoError(t, osWrite(filepath.Join(dir, path), src)) }
	write("ledger/ledger.go", `package ledger

// A comment may say $1, ON CONFLICT and now().
func now() string { return "" }

var stamp = now()

const upsert = `+"`"+`INSERT INTO t (k) VALUES ('x')
	ON CONFLICT (k) DO NOTHING`+"`"+`

const read = "SELECT v FROM t WHERE k = $1"

const (
	moved    = `+"`UPDATE t SET v = 1 RETURNING v`"+`
	counted  = `+"`SELECT count(*) FILTER (WHERE v) FROM t`"+`
	compared = `+"`SELECT 1 WHERE a IS NOT DISTINCT FROM b`"+`
	stamped  = `+"`UPDATE t SET at = now()`"+`
)
`)
	write("ledger/ledger_test.go", "package ledger\n\nconst q = `SELECT $1`\n")
	write("internal/dialect/common/ledger.go", "package common\n\nconst q = `SELECT $1`\n")
	write("examples/quickstart/main.go", "package main\n\nconst q = `SELECT $1`\n")
	write("cmd/schemashift/main.go", "package main\n\nconst q = `SELECT $1`\n")
	found := statementsOutsideInternal(t, dir)
	var got []string
	for _, f := range found {
		got = append(got, f.String())
	}
	assert.Equal(t, []string{
		"ledger/ledger.go:9: ON CONFLICT",
		"ledger/ledger.go:11: $1",
		"ledger/ledger.go:14: RETURNING",
		"ledger/ledger.go:15: FILTER (",
		"ledger/ledger.go:16: IS NOT DISTINCT FROM",
		"ledger/ledger.go:17: now()",
	}, got)
}
