package layers_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/schemashift/schemashift/"

// allowed is docs/architecture.md's table: each package of the module and
// the module's packages its code (not its tests) may import.
var allowed = map[string][]string{
	"flags":                       nil,
	"flags/flagstest":             {"flags", "internal/stringflag"},
	"dualwrite":                   {"flags"},
	"dualwrite/dualwriteotel":     {"dualwrite", "flags"},
	"dualwrite/dualwritetest":     {"dualwrite", "flags"},
	"backfill":                    {"internal/backoff", "internal/dialect", "internal/dialects", "internal/fragment", "internal/ident", "internal/pgerr"},
	"contract":                    {"internal/dialect", "internal/dialects", "internal/ident"},
	"contract/contracttest":       {"dualwrite", "flags", "flags/flagstest"},
	"ddl":                         {"internal/backoff", "internal/dialect", "internal/dialects", "internal/fragment", "internal/ident", "internal/pgerr"},
	"fleet":                       {"dualwrite", "flags", "internal/dialect", "internal/dialects", "internal/ident"},
	"ledger":                      {"fleet", "flags", "internal/dialect", "internal/dialects", "internal/ident"},
	"ledgerflag":                  {"ledger", "internal/dialects", "internal/stringflag"},
	"rollout":                     {"backfill", "contract", "dualwrite", "flags", "ddl", "fleet", "ledger", "ledgerflag", "internal/backoff", "internal/dialect", "internal/dialects", "internal/ident", "internal/pgerr"},
	"report":                      {"rollout", "backfill", "ddl", "fleet", "ledger", "internal/dialect", "internal/dialects"},
	"board":                       {"rollout", "report", "backfill", "fleet", "ledger", "internal/pgerr"},
	"sqlite":                      {"internal/dialect", "internal/dialect/sqlite"},
	"internal/dialect":            {"internal/ident"},
	"internal/dialect/common":     {"internal/dialect"},
	"internal/dialect/postgres":   {"internal/dialect", "internal/dialect/common", "internal/ident"},
	"internal/dialect/sqlite":     {"internal/dialect", "internal/dialect/common", "internal/ident"},
	"internal/dialects":           {"internal/dialect", "internal/dialect/postgres", "internal/dialect/sqlite"},
	"internal/backoff":            nil,
	"internal/fragment":           {"internal/dialect"},
	"internal/ident":              nil,
	"internal/pgerr":              {"internal/dialect/sqlite"},
	"internal/stringflag":         nil,
	"internal/pgtest":             nil,
	"internal/dbtest":             {"internal/dialect", "internal/dialects", "internal/pgtest", "sqlite"},
	"internal/rollouttest":        {"rollout", "backfill", "flags", "fleet", "internal/dialect", "sqlite"},
	"internal/layers":             nil,
	"cmd/schemashift":             public,
	"examples/internal/exampledb": append([]string{"internal/pgtest"}, public...),
	"examples/ordertotals":        examples,
	"examples/quickstart":         examples,
	"examples/service":            examples,
	"examples/integration":        examples,
}

// public is the exported API, all a program may use.
var public = []string{"backfill", "board", "contract", "contract/contracttest", "ddl", "dualwrite", "dualwrite/dualwriteotel",
	"dualwrite/dualwritetest", "flags", "flags/flagstest", "fleet", "ledger", "ledgerflag", "report", "rollout", "sqlite"}

var examples = append([]string{"examples/internal/exampledb"}, public...)

// root is the module's folder, two up from this package's.
func root(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	r := filepath.Join(wd, "..", "..")
	_, err = os.Stat(filepath.Join(r, "go.mod"))
	require.NoError(t, err, "the module's go.mod two folders up")
	return r
}

// sources parses, with mode, the non-test Go files below dir (but in
// hidden folders, testdata, and skipped folders: skip gets a folder's
// path relative to dir, slash-separated) and hands each to fn with its
// path relative to dir.
func sources(t *testing.T, dir string, mode parser.Mode, skip func(rel string) bool, fn func(rel string, f *ast.File) error) {
	t.Helper()
	sourcesIn(t, token.NewFileSet(), dir, mode, skip, fn)
}

// sourcesIn is sources, the files' positions kept in fset.
func sourcesIn(t *testing.T, fset *token.FileSet, dir string, mode parser.Mode, skip func(rel string) bool, fn func(rel string, f *ast.File) error) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if name := d.Name(); path != dir && (strings.HasPrefix(name, ".") || name == "testdata" || skip(rel)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, mode)
		if err != nil {
			return err
		}
		return fn(rel, f)
	})
	require.NoError(t, err)
}

// imports reads, per package folder of the module, the module's packages
// its non-test files import.
func imports(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sources(t, dir, parser.ImportsOnly, func(string) bool { return false }, func(rel string, f *ast.File) error {
		pkg := path.Dir(rel)
		if _, ok := out[pkg]; !ok {
			out[pkg] = nil
		}
		for _, im := range f.Imports {
			p, err := strconv.Unquote(im.Path.Value)
			if err != nil {
				return err
			}
			if dep, ok := strings.CutPrefix(p, module); ok && !slices.Contains(out[pkg], dep) {
				out[pkg] = append(out[pkg], dep)
			}
		}
		return nil
	})
	return out
}

func TestImportsFollowTheArchitecture(t *testing.T) {
	t.Parallel()
	found := imports(t, root(t))
	require.Contains(t, found, "rollout", "the walk found the module's packages")
	for pkg, deps := range found {
		may, listed := allowed[pkg]
		if !assert.True(t, listed, "package %s is not in docs/architecture.md's table (nor in this test's)", pkg) {
			continue
		}
		for _, dep := range deps {
			assert.Contains(t, may, dep, "%s imports %s, which docs/architecture.md does not allow", pkg, dep)
		}
	}
	for pkg := range allowed {
		assert.Contains(t, found, pkg, "the table lists %s, which is gone: take it out of docs/architecture.md and this test", pkg)
	}
}

// The test reads what it checks: a made-up tree with a forbidden import
// and an unlisted package is caught.
func TestImportsCheckCatchesABrokenRule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(path, src string) {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, path), []byte(src), 0o644))
	}
	write("ddl/ops.go", "package ddl\nimport _ \""+module+"rollout\"\n")
	write("ddl/ops_test.go", "package ddl\nimport _ \""+module+"examples/quickstart\"\n")
	write("newpkg/a.go", "package newpkg\n")
	found := imports(t, dir)
	assert.Equal(t, []string{"rollout"}, found["ddl"], "a test file's imports are not the package's")
	assert.NotContains(t, allowed["ddl"], found["ddl"][0], "ddl importing rollout breaks the rule")
	_, listed := allowed["newpkg"]
	assert.False(t, listed)
	assert.Contains(t, found, "newpkg")
}
