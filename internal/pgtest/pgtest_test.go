package pgtest_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDB(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)

	var one int
	require.NoError(t, db.GetContext(ctx, &one, "SELECT 1"))
	assert.Equal(t, 1, one)

	_, err := db.ExecContext(ctx, "CREATE TABLE users (id int PRIMARY KEY, full_name text NOT NULL)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO users (id, full_name) VALUES ($1, $2), ($3, $4)",
		1, "Ada Lovelace", 2, "Alan Turing")
	require.NoError(t, err)
	var names []string
	require.NoError(t, db.SelectContext(ctx, &names, "SELECT full_name FROM users ORDER BY id"))
	assert.Equal(t, []string{"Ada Lovelace", "Alan Turing"}, names)
}

func TestDBIsolated(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b := pgtest.DB(t), pgtest.DB(t)

	var nameA, nameB string
	require.NoError(t, a.GetContext(ctx, &nameA, "SELECT current_database()"))
	require.NoError(t, b.GetContext(ctx, &nameB, "SELECT current_database()"))
	require.NotEqual(t, nameA, nameB)

	_, err := a.ExecContext(ctx, "CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users VALUES (1)")
	require.NoError(t, err)
	var visible bool
	require.NoError(t, b.GetContext(ctx, &visible, "SELECT to_regclass('users') IS NOT NULL"))
	assert.False(t, visible, "a table created in one test's database is visible in another's")
	_, err = b.ExecContext(ctx, "CREATE TABLE users (id int PRIMARY KEY)")
	require.NoError(t, err, "the same table name must be free in another database")
}

func TestDroppedAfterCleanup(t *testing.T) {
	t.Parallel()
	admin, err := pgx.Connect(t.Context(), pgtest.SharedServer(t).URL())
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(context.Background()) })
	exists := func(t *testing.T, name string) bool {
		var n int
		require.NoError(t, admin.QueryRow(t.Context(),
			"SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
		return n == 1
	}

	for _, tc := range []struct {
		helper string
		open   func(t *testing.T) (name string)
	}{
		{"DB", func(t *testing.T) string {
			var name string
			require.NoError(t, pgtest.DB(t).GetContext(t.Context(), &name, "SELECT current_database()"))
			return name
		}},
		{"URL", func(t *testing.T) string {
			// Left open on purpose: the drop must terminate it.
			conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
			require.NoError(t, err)
			return conn.Config().Database
		}},
	} {
		t.Run(tc.helper, func(t *testing.T) {
			var name string
			t.Run("inner", func(t *testing.T) {
				name = tc.open(t)
				require.True(t, exists(t, name), "database %s missing during the test", name)
			})
			require.NotEmpty(t, name)
			assert.False(t, exists(t, name), "database %s still exists after the test's cleanup", name)
		})
	}
}

// TestPrivateCluster starts one private cluster and checks, in order, that
// Start borrows it when URLEnv names it, that another cluster started on its
// port moves on, and that Close tears it down.
func TestPrivateCluster(t *testing.T) { // not parallel: t.Setenv
	ctx := t.Context()
	private, err := pgtest.Start(ctx, pgtest.Options{URLEnv: "PGTEST_TEST_NEVER_SET"})
	require.NoError(t, err)
	defer private.Close()
	dir, pid := pgtest.Dir(private), pgtest.PID(private)
	require.NotEmpty(t, dir)
	require.NotZero(t, pid)
	assert.Regexp(t, `^postgres://postgres@127\.0\.0\.1:\d+/postgres\?sslmode=disable$`, private.URL())
	if os.Geteuid() == 0 {
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		assert.NotZero(t, fi.Sys().(*syscall.Stat_t).Uid, "the cluster dir of a root process must belong to an unprivileged user")
	}

	t.Run("URLEnv borrows a running server", func(t *testing.T) {
		const env = "PGTEST_TEST_EXISTING_SERVER_URL"
		t.Setenv(env, private.URL())
		existing, err := pgtest.Start(ctx, pgtest.Options{URLEnv: env})
		require.NoError(t, err)
		defer existing.Close()
		assert.Equal(t, private.URL(), existing.URL())
		assert.Empty(t, pgtest.Dir(existing), "started a cluster although %s was set", env)
		assert.Zero(t, pgtest.PID(existing), "started a postmaster although %s was set", env)

		// A prefix far too long for an identifier still yields a working
		// name that Postgres does not truncate.
		dbURL, err := existing.CreateDatabase(ctx, strings.Repeat("Long Prefix ", 10))
		require.NoError(t, err)
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		name := strings.TrimPrefix(u.Path, "/")
		conn, err := pgx.Connect(ctx, dbURL)
		require.NoError(t, err)
		var current string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&current))
		require.NoError(t, conn.Close(ctx))
		assert.Equal(t, name, current)

		require.Error(t, existing.DropDatabase(ctx, "postgres"), "dropped a database it did not create")

		// Closing the borrowed server drops what it created and nothing else.
		require.NoError(t, existing.Close())
		admin, err := pgx.Connect(ctx, private.URL())
		require.NoError(t, err)
		defer admin.Close(ctx)
		var n int
		require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
		assert.Zero(t, n, "database %s survived Close of the server that created it", name)
		require.NoError(t, admin.Ping(ctx), "Close of a borrowed server must leave it running")

		_, err = existing.CreateDatabase(ctx, "after_close")
		assert.Error(t, err)
	})

	t.Run("Start retries a taken port", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer busy.Close()
		u, err := url.Parse(private.URL())
		require.NoError(t, err)
		privatePort, err := strconv.Atoi(u.Port())
		require.NoError(t, err)
		// First a port where nothing answers, then one where another
		// Postgres answers, which the new cluster must not take for itself.
		ports := []int{busy.Addr().(*net.TCPAddr).Port, privatePort}

		srv, err := pgtest.Start(ctx, pgtest.WithPorts(pgtest.Options{}, ports...))
		require.NoError(t, err)
		defer func() { assert.NoError(t, srv.Close()) }()
		for _, p := range ports {
			assert.NotContains(t, srv.URL(), ":"+strconv.Itoa(p)+"/")
		}
		conn, err := pgx.Connect(ctx, srv.URL())
		require.NoError(t, err)
		defer conn.Close(context.Background())
		var dataDir string
		require.NoError(t, conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir))
		assert.Equal(t, filepath.Join(pgtest.Dir(srv), "data"), dataDir)
	})

	t.Run("Close is idempotent and removes the cluster", func(t *testing.T) {
		require.NoError(t, private.Close())
		require.NoError(t, private.Close())
		_, err = os.Stat(dir)
		assert.ErrorIs(t, err, os.ErrNotExist, "cluster dir left behind")
		assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "postmaster still running")
		_, err = private.CreateDatabase(ctx, "after_close")
		assert.Error(t, err)
	})
}

func TestStartWithoutBinaries(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	const env = "PGTEST_TEST_NEVER_SET"
	_, err := pgtest.Start(t.Context(),
		pgtest.WithSearch(pgtest.Options{URLEnv: env}, empty, filepath.Join(empty, "*", "bin")))
	require.ErrorIs(t, err, pgtest.ErrNoPostgres)
	assert.ErrorContains(t, err, "apt-get install postgresql")
	assert.ErrorContains(t, err, env)
}

// TestBinDirEnv: a bin directory named by the variable is the one Start
// uses, and one without the binaries fails Start rather than falling back
// to the machine's PostgreSQL.
func TestBinDirEnv(t *testing.T) { // not parallel: t.Setenv
	ctx := t.Context()
	real := serverBinDir(t)
	empty := t.TempDir()
	t.Setenv(pgtest.BinDirEnv, empty)
	_, err := pgtest.Start(ctx, pgtest.Options{URLEnv: "PGTEST_TEST_NEVER_SET"})
	require.ErrorIs(t, err, pgtest.ErrNoPostgres)
	assert.ErrorContains(t, err, pgtest.BinDirEnv)
	assert.ErrorContains(t, err, empty)

	// A directory of links to the real binaries (the way npm's packages and
	// Debian's /usr/bin lay them out) is followed to them.
	links := t.TempDir()
	for _, exe := range []string{"initdb", "postgres"} {
		require.NoError(t, os.Symlink(filepath.Join(real, exe), filepath.Join(links, exe)))
	}
	t.Setenv(pgtest.BinDirEnv, links)
	if os.Geteuid() == 0 {
		// t.TempDir's folders are root's alone: the postgres user, who runs
		// the cluster, cannot reach the binaries, and the error says so.
		_, err = pgtest.Start(ctx, pgtest.Options{URLEnv: "PGTEST_TEST_NEVER_SET"})
		require.ErrorIs(t, err, os.ErrPermission)
		assert.ErrorContains(t, err, "the postgres user must be able to read and execute "+links)
	}
	for _, dir := range []string{filepath.Dir(links), links} {
		require.NoError(t, os.Chmod(dir, 0o755))
	}
	srv, err := pgtest.Start(ctx, pgtest.Options{URLEnv: "PGTEST_TEST_NEVER_SET"})
	require.NoError(t, err)
	defer func() { assert.NoError(t, srv.Close()) }()
	assert.Equal(t, links, pgtest.BinDir(srv))
	assert.Equal(t, binaryMajor(t, real), serverMajor(t, srv.URL()))
}

// TestSharedServerVersion: the server every test of a package shares runs
// the binaries of $SCHEMASHIFT_TEST_PG_BIN when it is set, so a run meant
// for one PostgreSQL version never tests another.
func TestSharedServerVersion(t *testing.T) {
	t.Parallel()
	srv := pgtest.SharedServer(t)
	if os.Getenv(pgtest.SharedURLEnv) != "" {
		assert.Empty(t, pgtest.BinDir(srv), "a private cluster although $%s names a server", pgtest.SharedURLEnv)
		return
	}
	want := serverBinDir(t)
	assert.Equal(t, want, pgtest.BinDir(srv))
	major := serverMajor(t, srv.URL())
	assert.Equal(t, binaryMajor(t, want), major)
	assert.GreaterOrEqual(t, major, 14, "PostgreSQL before 14 is not supported")
	t.Logf("PostgreSQL %d from %s", major, want)
}

// serverBinDir is where Start takes the binaries from in this run.
func serverBinDir(t *testing.T) string {
	t.Helper()
	dir, err := pgtest.DefaultBinDir(t.Context())
	require.NoError(t, err)
	return dir
}

// binaryMajor is the major version that dir's postgres --version prints.
func binaryMajor(t *testing.T, dir string) int {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), filepath.Join(dir, "postgres"), "--version").Output()
	require.NoError(t, err)
	m := regexp.MustCompile(`\(PostgreSQL\) (\d+)\.`).FindSubmatch(out)
	require.NotNil(t, m, "postgres --version: %s", out)
	major, err := strconv.Atoi(string(m[1]))
	require.NoError(t, err)
	return major
}

// serverMajor is the major version of the server at u.
func serverMajor(t *testing.T, u string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var num int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_setting('server_version_num')::int").Scan(&num))
	return num / 10000
}

func TestFindBinDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	root, err := filepath.EvalSymlinks(root)
	require.NoError(t, err)
	executable := func(path, script string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755))
	}
	lib := filepath.Join(root, "lib")
	for _, v := range []string{"9.6", "10", "15", "16"} {
		executable(filepath.Join(lib, v, "bin", "initdb"), "")
		if v != "16" { // incomplete: no postgres
			executable(filepath.Join(lib, v, "bin", "postgres"), "")
		}
	}
	linked := filepath.Join(root, "linked")
	require.NoError(t, os.MkdirAll(linked, 0o755))
	require.NoError(t, os.Symlink(filepath.Join(lib, "10", "bin", "initdb"), filepath.Join(linked, "initdb")))
	withConfig := filepath.Join(root, "config")
	executable(filepath.Join(withConfig, "pg_config"), "echo "+filepath.Join(lib, "9.6", "bin")+"\n")
	empty := filepath.Join(root, "empty")
	require.NoError(t, os.MkdirAll(empty, 0o755))
	glob := filepath.Join(lib, "*", "bin")
	noGlob := filepath.Join(empty, "*", "bin")

	for _, tc := range []struct {
		name, binDir, path, glob, want string
	}{
		{"PATH through a symlink", "", linked + ":" + withConfig, glob, filepath.Join(lib, "10", "bin")},
		{"pg_config", "", empty + ":" + withConfig, glob, filepath.Join(lib, "9.6", "bin")},
		{"highest complete version", "", empty, glob, filepath.Join(lib, "15", "bin")},
		{"none", "", empty, noGlob, ""},
		{"bin dir named", filepath.Join(lib, "9.6", "bin"), linked + ":" + withConfig, glob, filepath.Join(lib, "9.6", "bin")},
		// Never the machine's instead: another version would be tested.
		{"bin dir incomplete", filepath.Join(lib, "16", "bin"), linked, glob, ""},
		{"bin dir empty", empty, linked, glob, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := pgtest.FindBinDir(t.Context(), tc.binDir, tc.path, tc.glob)
			if tc.want == "" {
				assert.True(t, errors.Is(err, pgtest.ErrNoPostgres), "err = %v", err)
				if tc.binDir != "" {
					assert.ErrorContains(t, err, pgtest.BinDirEnv)
					assert.ErrorContains(t, err, tc.binDir)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	for _, tc := range []struct {
		prefix, wantBase string
	}{
		{"TestDB", "testdb_"},
		{"TestDB/sub case#01", "testdb_sub_case_01_"},
		{"", "db_"},
		{"__--__", "db_"},
		{"2fast", "db_2fast_"},
		{"Größe", "gr_e_"},
		{"Robert'); DROP TABLE students;--", "robert_drop_table_students_"},
		{strings.Repeat("abc", 40), "abcabc"},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			t.Parallel()
			name := pgtest.DatabaseName(tc.prefix, 12345)
			assert.Regexp(t, valid, name)
			assert.LessOrEqual(t, len(name), 63)
			assert.True(t, strings.HasPrefix(name, tc.wantBase), "%q lacks prefix %q", name, tc.wantBase)
			assert.Contains(t, name, "_12345_")
			assert.NotEqual(t, name, pgtest.DatabaseName(tc.prefix, 12345), "names must not repeat across processes")
		})
	}
}
