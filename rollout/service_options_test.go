package rollout_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/fleet"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/rollout"
)

// ServiceConfig.InstanceOptions reach the instance Start makes: a sample
// retention of two rows keeps two of four heartbeats' samples, and an
// option the fleet refuses makes Start fail with the fleet's error.
func TestStartAppliesInstanceOptions(t *testing.T) {
	t.Parallel()
	db := dbtest.SQLite(t)
	rollouttest.UsersDB(t, db)
	clock := rollouttest.NewClock()
	cfg := rollout.ServiceConfig{Service: "users-api", Build: "v1", InstanceID: "api-1",
		Plans: []rollout.Plan{rollouttest.UsersPlan(db)}, Clock: clock.Now,
		InstanceOptions: []fleet.Option{fleet.WithSampleRetention(time.Hour, 2)}}
	s, err := rollout.Start(t.Context(), db, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	for range 4 {
		s.Instance.Observer().ObserveCall(t.Context(), dualwrite.Call{Migration: "users_split_name", Stage: flags.Off, Origin: dualwrite.Old, Duration: time.Millisecond})
		require.NoError(t, s.Instance.Beat(t.Context()))
		clock.Add(time.Second)
	}
	h, err := fleet.Samples(t.Context(), db, "users_split_name", clock.Now().Add(-time.Hour), clock.Now())
	require.NoError(t, err)
	require.Len(t, h.Instances, 1)
	assert.Len(t, h.Instances[0].Samples, 2, "the retention of two rows")

	bad := cfg
	bad.InstanceID = "api-2"
	bad.InstanceOptions = []fleet.Option{fleet.WithSampleRetention(-time.Hour, 0)}
	_, err = rollout.Start(t.Context(), db, bad)
	require.ErrorIs(t, err, fleet.ErrInvalidArgument)
}
