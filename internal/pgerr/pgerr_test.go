package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgerr"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("chunk: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		err  error
		want pgerr.Kind
	}{
		{nil, pgerr.Other},
		{pg("55P03"), pgerr.LockTimeout},
		{pg("40P01"), pgerr.Deadlock},
		{pg("40001"), pgerr.Serialization},
		{pg("57014"), pgerr.StatementTimeout},
		{pg("08006"), pgerr.Connection},
		{pg("57P01"), pgerr.Connection},
		{pg("23505"), pgerr.Other},
		{pg("42601"), pgerr.Other},
		{io.ErrUnexpectedEOF, pgerr.Connection},
		{context.Canceled, pgerr.Other},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), pgerr.Other},
		{errors.New("driver: bad connection"), pgerr.Connection},
		{errors.New("boom"), pgerr.Other},
		{fmt.Errorf("chunk: %w", sqliteErr(5)), pgerr.LockTimeout},   // SQLITE_BUSY
		{fmt.Errorf("chunk: %w", sqliteErr(517)), pgerr.LockTimeout}, // SQLITE_BUSY_SNAPSHOT
		{fmt.Errorf("chunk: %w", sqliteErr(6)), pgerr.LockTimeout},   // SQLITE_LOCKED
		{fmt.Errorf("chunk: %w", sqliteErr(19)), pgerr.Other},        // SQLITE_CONSTRAINT
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, pgerr.Classify(tt.err), "%v", tt.err)
		assert.Equal(t, tt.want != pgerr.Other, pgerr.Classify(tt.err).Retryable())
	}
	assert.Equal(t, "55P03", pgerr.Code(pg("55P03")))
	assert.Empty(t, pgerr.Code(errors.New("x")))
}

// A missing table is told apart on both databases: SQLite's has no code
// of its own, so its message is read, but only on a SQLite error.
func TestUndefinedTable(t *testing.T) {
	t.Parallel()
	_, err := dbtest.SQLite(t).ExecContext(t.Context(), `UPDATE missing SET a = 1`)
	require.Error(t, err)
	assert.True(t, pgerr.UndefinedTable(fmt.Errorf("set status: %w", err)), "%v", err)
	assert.True(t, pgerr.UndefinedTable(fmt.Errorf("read state: %w", &pgconn.PgError{Code: "42P01"})))
	assert.False(t, pgerr.UndefinedTable(&pgconn.PgError{Code: "42703"}), "undefined column")
	assert.False(t, pgerr.UndefinedTable(sqliteErr(1)))
	assert.False(t, pgerr.UndefinedTable(errors.New("no such table: x")), "not a database's error")
	assert.False(t, pgerr.UndefinedTable(nil))
}

// sqliteErr has the shape of modernc.org/sqlite's *Error: a result code.
type sqliteErr int

func (e sqliteErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e sqliteErr) Code() int     { return int(e) }

// Only the database's own errors are answers: a context's or a lost
// connection's leave the outcome open.
func TestAnswered(t *testing.T) {
	assert.True(t, pgerr.Answered(fmt.Errorf("commit: %w", &pgconn.PgError{Code: "40001"})))
	assert.True(t, pgerr.Answered(fmt.Errorf("commit: %w", sqliteErr(5))))
	assert.False(t, pgerr.Answered(context.Canceled))
	assert.False(t, pgerr.Answered(fmt.Errorf("commit: %w", io.ErrUnexpectedEOF)))
	assert.False(t, pgerr.Answered(nil))
}

// Only an error a session raised about a statement it ran (severity
// ERROR) says the statement ran: a FATAL one (a connection refused, a
// session ended) says it never did, whatever its SQLSTATE.
func TestRan(t *testing.T) {
	t.Parallel()
	assert.True(t, pgerr.Ran(fmt.Errorf("chunk: %w", &pgconn.PgError{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "57014"})))
	assert.True(t, pgerr.Ran(&pgconn.PgError{Severity: "ERROR", Code: "40001"}), "an old server's, unlocalized severity missing")
	assert.False(t, pgerr.Ran(&pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "53300"}))
	assert.False(t, pgerr.Ran(&pgconn.PgError{Severity: "FATAL", Code: "57P01"}))
	assert.False(t, pgerr.Ran(&pgconn.PgError{Severity: "ERREUR", SeverityUnlocalized: "FATAL", Code: "28000"}), "the unlocalized severity decides")
	assert.True(t, pgerr.Ran(fmt.Errorf("commit: %w", sqliteErr(5))))
	assert.False(t, pgerr.Ran(context.Canceled))
	assert.False(t, pgerr.Ran(fmt.Errorf("commit: %w", io.ErrUnexpectedEOF)))
	assert.False(t, pgerr.Ran(nil))
}
