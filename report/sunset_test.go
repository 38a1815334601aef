package report_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/rollouttest"
	"github.com/schemashift/schemashift/report"
	"github.com/schemashift/schemashift/rollout"
)

// The runbook of a plan with a sunset has a section saying the date (in
// UTC, whatever the zone it was written in), when the warning starts,
// and what happens from the date on; a plan without one has none.
func TestRunbookSunset(t *testing.T) {
	t.Parallel()
	p := rollouttest.UsersPlan(nil)
	md, err := report.Runbook(p)
	require.NoError(t, err)
	assert.NotContains(t, md, "## Sunset")
	pr, err := report.ProcedureOf(p)
	require.NoError(t, err)
	assert.Nil(t, pr.Sunset)

	at := time.Date(2032, 6, 30, 18, 0, 0, 0, time.UTC)
	p.Sunset = rollout.Sunset{At: at.In(time.FixedZone("UTC-7", -7*3600))}
	md, err = report.Runbook(p)
	require.NoError(t, err)
	section := md[strings.Index(md, "## Sunset"):]
	for _, want := range []string{
		"The old path should be gone by **2032-06-30T18:00:00Z** (UTC)",
		"From 2032-06-23T18:00:00Z (7 d before the date): they warn.",
		"`schemashift status users_split_name`",
		"event `sunset-overdue`",
		"(id, service, build)",
		"The date gates no transition",
	} {
		assert.Contains(t, section, want)
	}
	pr, err = report.ProcedureOf(p)
	require.NoError(t, err)
	require.NotNil(t, pr.Sunset)
	assert.Equal(t, report.SunsetNotice{At: at, Warn: rollout.DefaultSunsetWarn, WarnFrom: at.Add(-7 * 24 * time.Hour)}, *pr.Sunset)

	// A hostile migration name cannot break out of its code span or add
	// a heading.
	p.Migration = "m`\n## Owned"
	md, err = report.Runbook(p)
	require.NoError(t, err)
	section = md[strings.Index(md, "## Sunset"):]
	assert.NotContains(t, section, "\n## Owned")
}
