package rollout_test

import (
	"os"
	"testing"

	"github.com/schemashift/schemashift/internal/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(racerEnv) != "" {
		os.Exit(racerMain()) // a subprocess of TestConcurrentAdvances
	}
	pgtest.Main(m)
}
