package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/schemashift/schemashift/rollout"
)

// SunsetNotice is a plan's sunset ([rollout.Sunset]) as the runbook
// states it: the date, in UTC, and when the warning starts. It is a
// value.
type SunsetNotice struct {
	At       time.Time     `json:"at"`
	Warn     time.Duration `json:"warn"`
	WarnFrom time.Time     `json:"warn_from"`
}

// sunsetNotice is p's sunset for the runbook (nil for none); p is
// normalized, its warning set.
func sunsetNotice(p rollout.Plan) *SunsetNotice {
	if p.Sunset.At.IsZero() {
		return nil
	}
	at := p.Sunset.At.UTC()
	return &SunsetNotice{At: at, Warn: p.Sunset.Warn, WarnFrom: at.Add(-p.Sunset.Warn)}
}

// sunsetMarkdown writes the runbook's section of the sunset.
func sunsetMarkdown(b *strings.Builder, migration string, s *SunsetNotice) {
	if s == nil {
		return
	}
	m := line(migration)
	fmt.Fprintf(b, "## Sunset\n\n")
	fmt.Fprintf(b, "The old path should be gone by **%s** (UTC): every instance off it and the migration contracted.\n\n", s.At.Format(time.RFC3339Nano))
	fmt.Fprintf(b, "- Until %s: `schemashift status %s` and the board's migration page show the time left (ok).\n", s.WarnFrom.Format(time.RFC3339Nano), m)
	fmt.Fprintf(b, "- From %s (%s before the date): they warn.\n", s.WarnFrom.Format(time.RFC3339Nano), HumanDuration(s.Warn))
	fmt.Fprintf(b, "- From the date on, until the contract: overdue. They name every live instance (id, service, build) whose heartbeats "+
		"reported old-path calls after the date; the first time one is seen, the audit trail records it once "+
		"(`schemashift audit %s`, event `sunset-overdue`). Chase those instances: deploy a build that no longer calls the old path, "+
		"then advance to complete and contract.\n", m)
	fmt.Fprintf(b, "- The date gates no transition: nothing advances or rolls back on its own when it passes.\n\n")
}
