// Package report renders what operators read about a migration, from its
// plan and from the ledger, through a coordinator's exported API.
//
// [Runbook] renders a plan as a Markdown runbook: every step in order,
// its gate and how to check it, the commands to advance, roll back and
// pause, and what to do when a gate refuses; generated from the plan, it
// cannot drift from it. [RunbookFor] renders it with the DDL a
// coordinator's database will run (PostgreSQL's for its server version,
// or SQLite's plain form with a note on each safety it gives up).
//
// [Retrospect] reads a migration's [Retrospective]: every transition with
// who and why, the time in each phase ([PhaseTime]), the backfills'
// statistics and the shadow comparisons, as JSON or
// [Retrospective.Markdown]. [Dependencies] reads the [DependencyMap] of
// which services take part in which migrations and which tables and
// columns each touches, and [DependencyMap.SVG] draws it.
//
// Every time a report judges (a phase's duration, which instances are
// live) is a reading of the coordinator's clock. The functions hold
// nothing and are safe for concurrent use; what they return are values.
package report
