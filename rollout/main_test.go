package rollout_test

import (
	"os"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(racerEnv) != "" {
		os.Exit(racerMain()) // a subprocess of TestConcurrentAdvances
	}
	pgtest.Main(m)
}

func open(t *testing.T, url string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}
