// Package pgerr classifies database errors in one place, so that every
// retry decision in schemashift, and every check for a table not created
// yet, agrees: PostgreSQL's by SQLSTATE here, SQLite's by result code in
// its dialect's package (which imports nothing of this one), asked from
// here.
package pgerr

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemashift/schemashift/internal/dialect/sqlite"
)

// Kind is what an error means for a retry.
type Kind uint8

// The kinds of error.
const (
	// Other: not retryable.
	Other Kind = iota
	// LockTimeout: lock_timeout expired (55P03), or SQLite's write lock
	// was not had within busy_timeout (SQLITE_BUSY, SQLITE_LOCKED); retry
	// after a pause.
	LockTimeout
	// Deadlock: the server aborted us to break a deadlock (40P01).
	Deadlock
	// Serialization: a serialization failure (40001).
	Serialization
	// StatementTimeout: statement_timeout expired (57014 without a
	// cancelled context); retry with less work.
	StatementTimeout
	// Connection: the connection or the server went away (class 08, admin
	// shutdown 57P01-57P03, or a network error); retry on a new connection.
	Connection
)

func (k Kind) String() string {
	switch k {
	case LockTimeout:
		return "lock_timeout"
	case Deadlock:
		return "deadlock"
	case Serialization:
		return "serialization_failure"
	case StatementTimeout:
		return "statement_timeout"
	case Connection:
		return "connection"
	}
	return "other"
}

// Retryable reports whether an error of this kind may succeed if retried.
func (k Kind) Retryable() bool { return k != Other }

// Classify returns the kind of err.
func Classify(err error) Kind {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Other
	}
	if sqlite.Busy(err) { // SQLITE_BUSY, SQLITE_LOCKED, extensions included
		return LockTimeout
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case code == "55P03":
			return LockTimeout
		case code == "40P01":
			return Deadlock
		case code == "40001":
			return Serialization
		case code == "57014":
			return StatementTimeout
		case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03":
			return Connection
		}
		return Other
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return Connection
	}
	if pgconn.SafeToRetry(err) {
		return Connection
	}
	// database/sql reports a connection lost mid-query this way.
	if strings.Contains(err.Error(), "driver: bad connection") || strings.Contains(err.Error(), "conn closed") {
		return Connection
	}
	return Other
}

// UndefinedTable reports whether err says a table does not exist:
// PostgreSQL's undefined_table (42P01) or SQLite's "no such table".
func UndefinedTable(err error) bool {
	return Code(err) == "42P01" || sqlite.UndefinedTable(err)
}

// FeatureNotSupported reports whether err is PostgreSQL's
// feature_not_supported (0A000): a statement the database does not run
// in that form (a data-modifying WITH over a table with DO ALSO rules,
// say).
func FeatureNotSupported(err error) bool { return Code(err) == "0A000" }

// Code returns err's SQLSTATE, or "".
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Answered reports whether err is the database's own answer (a SQLSTATE,
// or a SQLite result code): a statement the database refused, which did
// nothing. Any other error (a context ended, a connection lost) leaves
// open whether the statement took effect.
func Answered(err error) bool {
	return Code(err) != "" || sqlite.Answered(err)
}

// Ran reports whether err is a statement's own error, raised by a
// session that ran it (severity ERROR): not a FATAL one, which a session
// raises as it refuses a connection or ends, before or instead of
// running any statement.
func Ran(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		sev := pgErr.SeverityUnlocalized
		if sev == "" {
			sev = pgErr.Severity
		}
		return sev == "ERROR"
	}
	return sqlite.Answered(err)
}
