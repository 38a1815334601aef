package ledger_test

import (
	"testing"

	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
