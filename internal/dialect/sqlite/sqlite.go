// Package sqlite is the [dialect.Dialect] of SQLite, through
// modernc.org/sqlite's database/sql driver (pure Go), and the
// classification of its errors.
//
// SQLite serializes writers: a write transaction holds the database's
// write lock from BEGIN (the driver's _txlock=immediate) to COMMIT, so the
// row locks and advisory locks other databases need are no-ops here, and
// a lock across processes is a leased row. The public sqlite package opens
// pools that way.
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/dialect"
	"github.com/schemashift/schemashift/internal/dialect/common"
	"github.com/schemashift/schemashift/internal/ident"
)

// Dialect is SQLite's. Its zero value is ready; it is immutable and safe
// for concurrent use.
type Dialect struct {
	common.Ledger
	common.Fleet
	common.Rollout
	common.DDL
	common.Backfill
	common.Aggregates
	common.Schedules
	// renewEvery is how often a lock's holder renews its lease: a third
	// of the lease when zero.
	renewEvery time.Duration
}

var _ dialect.Dialect = Dialect{}

// New returns SQLite's dialect.
func New() dialect.Dialect { return Dialect{} }

// RenewingEvery is d with its locks' leases renewed every every, in
// place of a third of the lease (tests shorten it).
func (d Dialect) RenewingEvery(every time.Duration) Dialect {
	d.renewEvery = every
	return d
}

func (Dialect) String() string { return "sqlite" }

// strftime is how SQLite's strftime spells a time in dialect.TimeFormat.
const strftime = "'%Y-%m-%d %H:%M:%f+00:00'"

var schemaSpellings = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?i)\bbigserial\s+PRIMARY\s+KEY\b`), "integer PRIMARY KEY AUTOINCREMENT"},
	{regexp.MustCompile(`(?i)\btimestamptz\b`), "timestamp"},
	{regexp.MustCompile(`(?i)\bjsonb\b`), "text"},
	{regexp.MustCompile(`(?i)\bDEFAULT (now|clock_timestamp)\(\)`), "DEFAULT (strftime(" + strftime + ", 'now'))"},
}

// Schema is DDL written in PostgreSQL's spelling in SQLite's: bigserial
// keys, timestamptz, jsonb and now() defaults become their SQLite forms.
// The schemas this package writes out are held to it by a test, so that
// the two databases' tables stay one design.
func (Dialect) Schema(ddl string) string {
	for _, s := range schemaSpellings {
		ddl = s.re.ReplaceAllString(ddl, s.with)
	}
	return ddl
}

// FoldName implements [dialect.Rendering]: SQLite compares names without
// regard to ASCII case, so "Users" and users are one object.
func (Dialect) FoldName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// TypeProblem implements [dialect.Rendering] by type affinity, the only
// type a SQLite column has: the wanted type, read in the catalog's
// canonical spelling (so serial is integer), and the declared type must
// have the same affinity.
func (Dialect) TypeProblem(want, got string) string {
	wa, ga := affinity(dialect.NormalizeType(want)), affinity(got)
	if wa == ga {
		return ""
	}
	declared := got
	if strings.TrimSpace(got) == "" {
		declared = "declared without a type"
	}
	return fmt.Sprintf("%s, want %s (SQLite type affinity %s, want %s)", declared, want, ga, wa)
}

// affinity is the type affinity SQLite gives a column declared typ, by the
// rules of https://www.sqlite.org/datatype3.html §3.1, in their order.
func affinity(typ string) string {
	t := strings.ToUpper(typ)
	switch {
	case strings.Contains(t, "INT"):
		return "INTEGER"
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		return "TEXT"
	case strings.Contains(t, "BLOB"), strings.TrimSpace(t) == "":
		return "BLOB"
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return "REAL"
	}
	return "NUMERIC"
}

// MisreadIn implements [dialect.Rendering]: SQLite reads '?' anywhere
// as a parameter, and '@', '#', ':' or '$' right before a name's
// character or a ':' (its @a(…), $a(…) and @::a(…) take everything up
// to their ')', quotes included, as one parameter's name); and it reads
// [ … ] as a name, whatever it holds up to the first ']': a quote in it
// would start a string for PostgreSQL's lexer, and none for SQLite's.
func (Dialect) MisreadIn(s string, start, end int) string {
	if s[start:end] == "[" {
		name, _, ok := strings.Cut(s[end:], "]")
		switch {
		case !ok:
			return "holds a [ without its ] (SQLite reads [ … ] as a name)"
		case strings.ContainsAny(name, "'\"`"):
			return "holds a string or a quoted name between [ and ] (SQLite reads [ … ] as a name, whatever it holds)"
		}
	}
	for k := start; k < end; k++ {
		switch s[k] {
		case '?':
			return "holds a '?' (SQLite reads it as a parameter)"
		case '@', '#', ':', '$':
			// A name's character, or its :: (@::a(…) is one name too).
			if k+1 < len(s) && (dialect.NameChar(s[k+1]) || s[k+1] == ':') {
				return fmt.Sprintf("holds %q (SQLite reads it as a parameter)", s[k:k+2])
			}
		}
	}
	return ""
}

// SearchPath implements [dialect.Capabilities]: an unqualified name is
// main's (or a temporary table's), with no path to resolve it through.
func (Dialect) SearchPath() bool { return false }

// ConcurrentIndexes implements [dialect.Capabilities]: an index is built
// inside the writing transaction, so a failed build leaves none.
func (Dialect) ConcurrentIndexes() bool { return false }

// PlainDDL implements [dialect.Capabilities]: a DDL statement waits for
// the database's write lock up to busy_timeout, as any writer does.
func (Dialect) PlainDDL() bool { return true }

// CurrentTime implements [dialect.Catalog].
func (Dialect) CurrentTime(ctx context.Context, q sqlx.QueryerContext) (time.Time, error) {
	var s string
	if err := sqlx.GetContext(ctx, q, &s, `SELECT strftime(`+strftime+`, 'now')`); err != nil {
		return time.Time{}, err
	}
	return dialect.ParseTime(s)
}

// EstimateRows implements [dialect.Catalog]: SQLite keeps no estimate.
func (Dialect) EstimateRows(context.Context, sqlx.QueryerContext, ident.Table) (int64, error) {
	return -1, nil
}

// ServerMajor implements [dialect.Catalog]: no form depends on it.
func (Dialect) ServerMajor(context.Context, sqlx.QueryerContext) (int, error) { return 0, nil }

// KeyHistogram implements [dialect.Catalog]: SQLite keeps no histograms.
func (Dialect) KeyHistogram(context.Context, sqlx.QueryerContext, ident.Table, string, string) ([]string, float64, error) {
	return nil, 0, nil
}

// CheckReplication implements [dialect.Catalog]: an embedded database
// has no replicas.
func (d Dialect) CheckReplication() error {
	return fmt.Errorf("replication lag: %w on %s: an embedded database has no replicas", errors.ErrUnsupported, d)
}

// ReplicationLag implements [dialect.Catalog]: see CheckReplication.
func (d Dialect) ReplicationLag(context.Context, sqlx.QueryerContext) (time.Duration, error) {
	return 0, d.CheckReplication()
}

// LockTx implements [dialect.Sessions]: the write transaction already
// excludes every other writer.
func (Dialect) LockTx(context.Context, dialect.Execer, int64) error { return nil }

// SetTimeouts implements [dialect.Sessions]: SQLite has neither timeout;
// a writer waits for the write lock up to the connection's busy_timeout,
// and statements are not timed.
func (Dialect) SetTimeouts(context.Context, dialect.Execer, time.Duration, time.Duration, bool) error {
	return nil
}

// SetDDLTimeouts implements [dialect.Sessions], as SetTimeouts.
func (Dialect) SetDDLTimeouts(context.Context, dialect.Execer, time.Duration, time.Duration, bool) error {
	return nil
}

// ResetTimeouts implements [dialect.Sessions]: nothing was set.
func (Dialect) ResetTimeouts(context.Context, dialect.Execer) error { return nil }

// DropInvalidIndex implements [dialect.Sessions]: SQLite builds an index
// inside the writing transaction, so a failed build rolls back and leaves
// no index behind.
func (Dialect) DropInvalidIndex(context.Context, dialect.Conn, ident.Table) error { return nil }

// DriverName is the database/sql driver name modernc.org/sqlite registers.
const DriverName = "sqlite"

// Driver says how [Dialect] is recognised: the name modernc.org/sqlite
// registers its driver under, the Go package of its driver and
// connection types, and a probe that succeeds on SQLite alone.
func Driver() dialect.Driver {
	return dialect.Driver{
		Dialect: Dialect{},
		Names:   []string{DriverName},
		Package: "modernc.org/sqlite",
		Probe:   `SELECT sqlite_version()`,
	}
}

// CheckBegin implements [dialect.RolloutQueries]: the connection is made
// query-only (SQLite has no read-only transaction, nor a statement
// timeout: the check's context interrupts it).
func (Dialect) CheckBegin(time.Duration) []string {
	return []string{`SAVEPOINT schemashift_check`, `PRAGMA query_only = ON`}
}

// CheckEnd implements [dialect.RolloutQueries]: common's, and the
// connection writable again (a pragma outlives a savepoint).
func (Dialect) CheckEnd() []string {
	return append(common.Rollout{}.CheckEnd(), `PRAGMA query_only = OFF`)
}
