package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

func comparison(match bool) dualwrite.Comparison {
	return dualwrite.Comparison{Migration: "users_split_name", Stage: flags.Shadow, Match: match}
}

const (
	racerEnv    = "SCHEMASHIFT_ROLLOUT_RACER"
	racerURL    = "SCHEMASHIFT_ROLLOUT_RACER_URL"
	racerTries  = "SCHEMASHIFT_ROLLOUT_RACER_TRIES"
	racerDriver = "SCHEMASHIFT_ROLLOUT_RACER_DRIVER"
)

// racePlan has no DDL, so that transitions are as fast as the ledger.
func racePlan() rollout.Plan {
	return rollout.Plan{Migration: "race"}
}

// attempt makes one transition attempt from the state it reads: forward
// until complete, then straight back to off. It reports whether it won.
func attempt(ctx context.Context, c *rollout.Coordinator, db *sqlx.DB, actor string) (bool, error) {
	st, err := rollout.Get(ctx, db, "race")
	if err != nil {
		return false, err
	}
	r := rollout.Request{Migration: "race", Version: st.Version, Actor: actor, Force: true, Reason: "race"}
	if st.Phase >= rollout.Complete {
		r.ToOff = true
		_, err = c.Rollback(ctx, r)
	} else {
		_, err = c.Advance(ctx, r)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, rollout.ErrConflict):
		return false, nil
	}
	return false, err
}

// racerMain is the second process of TestConcurrentAdvances.
func racerMain() int {
	ctx := context.Background()
	var db *sqlx.DB
	var err error
	if os.Getenv(racerDriver) == sqlite.DriverName {
		db, err = sqlite.Open(ctx, os.Getenv(racerURL))
	} else {
		db, err = sqlx.Open("pgx", os.Getenv(racerURL))
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer db.Close()
	c, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{racePlan()})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	n, _ := strconv.Atoi(os.Getenv(racerTries))
	wins := 0
	for range n {
		won, err := attempt(ctx, c, db, "process-2")
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if won {
			wins++
		}
	}
	fmt.Println("wins", wins)
	return 0
}

// clock is a test's clock for rollout.WithClock and
// rollout.WithInstanceClock: it stands still until the test moves it, so
// that a window passes or an instance ages out when the test says, not
// when a loaded machine gets round to it. It starts in 2031, years from
// the database's own clock, so that a decision the database's now() made
// instead of the clock shows.
type clock struct{ ns atomic.Int64 }

// t0 is a clock's start: the last microsecond of a year, so that moving
// it crosses a second, a day and a year at once.
var t0 = time.Date(2031, 12, 31, 23, 59, 59, 999999000, time.UTC)

func newClock() *clock {
	c := &clock{}
	c.ns.Store(t0.UnixNano())
	return c
}

func (c *clock) Now() time.Time                { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) time.Time { return time.Unix(0, c.ns.Add(int64(d))).UTC() }

// forced moves a migration n phases on by force, as a test's setup.
func forced(t *testing.T, c *rollout.Coordinator, migration string, n int) {
	t.Helper()
	for range n {
		_, err := c.Advance(t.Context(), rollout.Request{Migration: migration, Actor: "t", Force: true, Reason: "setup"})
		require.NoError(t, err)
	}
}

// instanceAt is an instance id of users-api v2 that knows migration, its
// heartbeats stamped by now.
func instanceAt(t *testing.T, db *sqlx.DB, id, migration string, now func() time.Time) *rollout.Instance {
	t.Helper()
	in, err := rollout.NewInstance(db, "users-api", "v2", []string{migration}, rollout.WithInstanceID(id), rollout.WithInstanceClock(now))
	require.NoError(t, err)
	return in
}
