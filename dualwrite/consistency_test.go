package dualwrite_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwritetest"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// A shadow origin that fails on every 20th call, over a database where old
// and new otherwise agree: each failure is reported as a failure, none as a
// match (the recheck, which reads again and would succeed, does not run),
// and every match is two successful reads that agreed.
func TestShadowErrorsAreNeverMatches(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testShadowErrorsAreNeverMatches)
}

func testShadowErrorsAreNeverMatches(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	usersDB(t, db)
	const users = 200
	for id := range int64(users) {
		require.NoError(t, writeOld(t.Context(), db, name{ID: id, Given: "Ada", Family: fmt.Sprint("Lovelace", id)}))
		require.NoError(t, writeNew(t.Context(), db, name{ID: id, Given: "Ada", Family: fmt.Sprint("Lovelace", id)}))
	}
	readOld := func(ctx context.Context, id int64) (string, error) {
		var full string
		err := db.GetContext(ctx, &full, `SELECT full_name FROM users WHERE id = $1`, id)
		return full, err
	}
	for _, stage := range []flags.Stage{flags.Shadow, flags.Live} {
		t.Run(stage.String(), func(t *testing.T) {
			var calls, failed atomic.Int64
			readNew := func(ctx context.Context, id int64) (string, error) {
				column := "family_name"
				if calls.Add(1)%20 == 0 {
					failed.Add(1)
					column = "no_such_column" // a real error from the database
				}
				var full string
				err := db.GetContext(ctx, &full, `SELECT given_name || ' ' || `+column+` FROM users WHERE id = $1`, id)
				return full, err
			}
			oldRead, newRead := readOld, readNew
			if stage == flags.Live { // the flaky origin is the shadow one
				oldRead, newRead = readNew, readOld
			}
			flag, _ := flagstest.Flag(t, migration, stage)
			rec := &dualwritetest.Recorder{}
			r, err := dualwrite.NewReader(flag, oldRead, newRead, dualwrite.WithObserver(rec))
			require.NoError(t, err)
			for id := range int64(users) {
				_, err := r.Read(t.Context(), id)
				require.NoError(t, err)
				r.Wait() // one at a time: the 20th call is the shadow read's, not a recheck's
			}
			require.NoError(t, r.Close())

			require.Equal(t, int64(users/20), failed.Load())
			cmp := rec.Comparisons()
			require.Len(t, cmp, users, "one comparison per shadow read")
			var matched, faults int
			for _, c := range cmp {
				switch {
				case c.Match:
					matched++
					assert.Equal(t, dualwrite.NoFault, c.Fault)
					assert.False(t, c.Rechecked, "no write raced these reads: nothing had to be cleared")
				case c.Fault != dualwrite.NoFault:
					faults++
					assert.Equal(t, dualwrite.FaultError, c.Fault)
					assert.False(t, c.Rechecked, "a failure is never rechecked")
					require.Len(t, c.Diffs, 1)
					assert.Equal(t, "error", c.Diffs[0].Path)
				}
			}
			assert.Equal(t, int(failed.Load()), faults, "every shadow error is counted as a failure")
			assert.Equal(t, users-int(failed.Load()), matched, "no shadow error is counted as a match")
			assert.Empty(t, rec.Mismatches(), "old and new agree wherever both were read")
			t.Logf("%s: %d shadow errors, %d counted as failures, %d matches", stage, failed.Load(), faults, matched)
		})
	}
}

// A recheck still clears a write that lands between the two reads, but a
// recheck whose own read fails is a failure, not a match.
func TestRecheckClearsRacesNotFailures(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testRecheckClearsRacesNotFailures)
}

func testRecheckClearsRacesNotFailures(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	usersDB(t, db)
	require.NoError(t, writeOld(t.Context(), db, name{ID: 1, Given: "Ada", Family: "Lovelace"}))
	require.NoError(t, writeNew(t.Context(), db, name{ID: 1, Given: "Ada", Family: "King"}))
	readOld := func(ctx context.Context, id int64) (string, error) {
		var full string
		err := db.GetContext(ctx, &full, `SELECT full_name FROM users WHERE id = $1`, id)
		return full, err
	}
	for _, tt := range []struct {
		name      string
		recheck   func(ctx context.Context) error // runs before the recheck's new read
		wantMatch bool
		wantFault dualwrite.Fault
	}{
		{"a write landed between the reads", func(ctx context.Context) error {
			return writeNew(ctx, db, name{ID: 1, Given: "Ada", Family: "Lovelace"})
		}, true, dualwrite.NoFault},
		{"the recheck's read fails", nil, false, dualwrite.FaultError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, writeNew(t.Context(), db, name{ID: 1, Given: "Ada", Family: "King"}))
			var calls atomic.Int32
			readNew := func(ctx context.Context, id int64) (string, error) {
				column := "family_name"
				if calls.Add(1) == 2 { // the recheck's
					if tt.recheck == nil {
						column = "no_such_column"
					} else if err := tt.recheck(ctx); err != nil {
						return "", err
					}
				}
				var full string
				err := db.GetContext(ctx, &full, `SELECT given_name || ' ' || `+column+` FROM users WHERE id = $1`, id)
				return full, err
			}
			flag, _ := flagstest.Flag(t, migration, flags.Shadow)
			rec := &dualwritetest.Recorder{}
			r, err := dualwrite.NewReader(flag, readOld, readNew, dualwrite.WithObserver(rec))
			require.NoError(t, err)
			_, err = r.Read(t.Context(), 1)
			require.NoError(t, err)
			r.Wait()
			require.NoError(t, r.Close())
			cmp := rec.Comparisons()
			require.Len(t, cmp, 1)
			assert.True(t, cmp[0].Rechecked)
			assert.Equal(t, tt.wantMatch, cmp[0].Match)
			assert.Equal(t, tt.wantFault, cmp[0].Fault)
		})
	}
}
