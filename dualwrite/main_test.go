package dualwrite_test

import (
	"database/sql"
	"testing"

	"github.com/schemashift/schemashift/internal/pgtest"
)

// Tests of TxWriter use a real PostgreSQL; Main also checks for leaked
// goroutines once the tests pass.
func TestMain(m *testing.M) { pgtest.Main(m) }

var sqlNoRows = sql.ErrNoRows
