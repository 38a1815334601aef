package layers_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// databaseNames are the words that name a database or one of its
// particulars: the databases and their drivers, PostgreSQL's catalogs and
// functions (pg_…, to_regclass, hashtext…, set_config, current_setting),
// SQLite's pragmas and schema table, and the old IsSQLite. Outside
// internal/ none may be an identifier or a string of the code (comments
// and docs may name databases): what differs is asked of the dialect.
var databaseNames = regexp.MustCompile(`(?i)sqlite|postgres|\bpgx\b|\bpg_[a-z_]+|to_regclass|regclass|hashtext|set_config|current_setting|pragma`)

// nameExemptPackages may name databases throughout, each for its reason.
var nameExemptPackages = map[string]string{
	"sqlite":          "the public package that opens SQLite pools: its name, its driver's and the driver's options are what it is about",
	"cmd/schemashift": "a program: it opens the database its URL names, choosing the driver by the URL's scheme",
	"examples":        "programs (and their helper) that open a database of their choosing, as a user's program would",
}

// nameExceptions are the names that stay in the library's own packages,
// by file and word (the match, in lower case), each with its reason.
var nameExceptions = map[[2]string]string{
	// The DDL of operations is checked by PostgreSQL's own parser, by
	// design (DESIGN.md: fragments are parsed by the PostgreSQL parser and
	// refused unless they are exactly one type or one expression): its
	// import path, its type names and the linter's advice name it.
	{"ddl/executor.go", "pg_query_go"}: "the PostgreSQL parser's module path",
	{"ddl/fragment.go", "pg_query_go"}: "the PostgreSQL parser's module path",
	{"ddl/lint.go", "pg_query_go"}:     "the PostgreSQL parser's module path",
	{"ddl/executor.go", "pg_catalog"}:  "the schema the parser puts built-in type names in, compared in its parse trees",
	{"ddl/lint.go", "postgres"}:        "the linter's rules are about PostgreSQL's DDL, and their advice says so",
	{"ddl/lint.go", "set_config"}:      "a rule of the linter: a script's own timeout settings, by PostgreSQL's name for them",
}

// nameFinding is one identifier or string that names a database.
type nameFinding struct {
	File, Word, Text string
}

// namesOutsideInternal reads the non-test Go files of the module in dir,
// outside internal/, and returns every identifier and string literal
// that names a database, by file (slash-separated, relative to dir).
func namesOutsideInternal(t *testing.T, dir string) []nameFinding {
	t.Helper()
	var out []nameFinding
	skip := func(rel string) bool { return rel == "internal" }
	sources(t, dir, parser.SkipObjectResolution, skip, func(rel string, f *ast.File) error {
		ast.Inspect(f, func(n ast.Node) bool {
			var text string
			switch n := n.(type) {
			case *ast.Ident:
				text = n.Name
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					return true
				}
				text = n.Value
			default:
				return true
			}
			for _, w := range databaseNames.FindAllString(text, -1) {
				out = append(out, nameFinding{File: rel, Word: strings.ToLower(w), Text: text})
			}
			return true
		})
		return nil
	})
	return out
}

// exempt returns why f may name a database, or "".
func exempt(f nameFinding) string {
	for pkg, why := range nameExemptPackages {
		if strings.HasPrefix(f.File, pkg+"/") {
			return why
		}
	}
	return nameExceptions[[2]string{f.File, f.Word}]
}

func TestNothingOutsideInternalNamesADatabase(t *testing.T) {
	t.Parallel()
	found := namesOutsideInternal(t, root(t))
	used := map[[2]string]bool{}
	reported := map[nameFinding]bool{}
	for _, f := range found {
		if exempt(f) != "" {
			used[[2]string{f.File, f.Word}] = true
			continue
		}
		if !reported[f] {
			reported[f] = true
			t.Errorf("%s: %q names a database (%s): ask the dialect instead", f.File, f.Text, f.Word)
		}
	}
	for e := range nameExceptions {
		assert.True(t, used[e], "the exception for %q in %s matches nothing: take it out", e[1], e[0])
	}
	require.True(t, slices.ContainsFunc(found, func(f nameFinding) bool { return f.File == "sqlite/sqlite.go" }),
		"the walk read the public sqlite package, which names its database")
}

// The check reads what it checks: a made-up tree naming databases in an
// identifier, a SQL string and a driver name is caught, while comments,
// tests and internal packages are not read.
func TestNamesCheckCatchesAViolation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(path, src string) {
		require.NoError(t, osWrite(filepath.Join(dir, path), src))
	}
	write("backfill/store.go", `package backfill

// PostgreSQL and SQLite may be named in a comment.
func lock(d interface{ IsSQLite() bool }) string {
	if d.IsSQLite() {
		return ""
	}
	return "SELECT pg_advisory_xact_lock($1)"
}

const driver = "pgx"
`)
	write("backfill/store_test.go", "package backfill\n\nconst sqlite = \"sqlite\"\n")
	write("internal/dialect/postgres/postgres.go", "package postgres\n\nconst q = `SELECT to_regclass($1)`\n")
	found := namesOutsideInternal(t, dir)
	var words []string
	for _, f := range found {
		assert.Equal(t, "backfill/store.go", f.File)
		assert.Empty(t, exempt(f), "nothing exempts %v", f)
		words = append(words, f.Word)
	}
	assert.Equal(t, []string{"sqlite", "sqlite", "pg_advisory_xact_lock", "pgx"}, words,
		"IsSQLite in the interface and the call, the lock function, the driver name; not the comment, the test or internal/")
}

func osWrite(path, src string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(src), 0o644)
}
