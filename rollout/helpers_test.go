package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/ledger"
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
	st, err := ledger.Get(ctx, db, "race")
	if err != nil {
		return false, err
	}
	r := rollout.Request{Migration: "race", Version: st.Version, Actor: actor, Force: true, Reason: "race"}
	if st.Phase >= ledger.Complete {
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
