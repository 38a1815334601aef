package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNoPostgres reports that no PostgreSQL server binaries (initdb and
// postgres) were found, so no private cluster can be started.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries found")

// BinDirEnv names the environment variable that, when set and non-empty, is
// the one directory [Start] takes initdb and postgres from, instead of
// searching the machine: how tests run on another PostgreSQL version than the
// installed one (.ci/postgres-versions sets it to each supported version's
// binaries). A directory without them is an error wrapping [ErrNoPostgres],
// never a fallback to the machine's version. When the cluster runs as the
// postgres user, that user must be able to read and execute the directory.
const BinDirEnv = "SCHEMASHIFT_TEST_PG_BIN"

// binSearch says where to look for initdb and postgres. Tests replace it
// through export_test.go to make the lookup fail.
type binSearch struct {
	binDir  string // when set, the only place looked at ($SCHEMASHIFT_TEST_PG_BIN)
	path    string // a $PATH-style list, searched for initdb and pg_config
	libGlob string // versioned bin directories; the highest version wins
}

func defaultSearch() binSearch {
	return binSearch{binDir: os.Getenv(BinDirEnv), path: os.Getenv("PATH"), libGlob: "/usr/lib/postgresql/*/bin"}
}

// findBinDir returns the directory holding both initdb and postgres: the one
// named by $SCHEMASHIFT_TEST_PG_BIN when set, else it looks in $PATH (through
// symlinks: Debian links them from elsewhere), then pg_config --bindir, then
// the highest /usr/lib/postgresql/*/bin.
func findBinDir(ctx context.Context, s binSearch) (string, error) {
	if s.binDir != "" {
		dir, err := filepath.Abs(s.binDir)
		if err == nil && hasServerBinaries(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w in $%s (%s): it must hold initdb and postgres", ErrNoPostgres, BinDirEnv, s.binDir)
	}
	if p := lookPath("initdb", s.path); p != "" {
		if real, err := filepath.EvalSymlinks(p); err == nil && hasServerBinaries(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	if pgConfig := lookPath("pg_config", s.path); pgConfig != "" {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if dir := strings.TrimSpace(string(out)); err == nil && hasServerBinaries(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(s.libGlob) // the only error is a malformed pattern
	slices.SortFunc(dirs, func(a, b string) int { return compareVersions(versionOf(b), versionOf(a)) })
	for _, dir := range dirs {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return "", ErrNoPostgres
}

// lookPath is exec.LookPath over a given list instead of the process's $PATH.
func lookPath(name, pathList string) string {
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func hasServerBinaries(dir string) bool {
	return dir != "" && isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres"))
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// versionOf returns the numeric components of the version directory in
// /usr/lib/postgresql/<version>/bin, e.g. [9 6] or [15].
func versionOf(binDir string) []int {
	var v []int
	for _, part := range strings.Split(filepath.Base(filepath.Dir(binDir)), ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

func compareVersions(a, b []int) int { return slices.Compare(a, b) }

func noPostgresError(urlEnv string) error {
	hint := "install the PostgreSQL server binaries (e.g. apt-get install postgresql)"
	if urlEnv != "" {
		hint += fmt.Sprintf(" or set %s to the URL of a server where this user may CREATE DATABASE", urlEnv)
	}
	return fmt.Errorf("find postgres: %w in $PATH, pg_config --bindir or /usr/lib/postgresql/*/bin: %s", ErrNoPostgres, hint)
}
