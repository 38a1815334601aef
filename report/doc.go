// Package report renders what operators read about a migration, from its
// plan and from the ledger, through a coordinator's exported API.
//
// [Runbook] renders a plan as a Markdown runbook ([ProcedureOf] gives it
// as data, a [Procedure], which the board renders as a page): every step in order,
// its gate and how to check it, the commands to advance, roll back and
// pause, and what to do when a gate refuses; generated from the plan, it
// cannot drift from it. [RunbookFor] renders it with the DDL a
// coordinator's database will run (PostgreSQL's for its server version,
// or SQLite's plain form with a note on each safety it gives up).
//
// [Retrospect] reads a migration's [Retrospective]: every transition with
// who and why, the time in each phase ([PhaseTime]), the backfills'
// statistics and the shadow comparisons, as JSON or
// [Retrospective.Markdown]; text from the audit trail (a reason, an actor)
// stays in its Markdown table cell, its line breaks and pipes escaped.
// [HumanDuration] writes durations as operators read them.
// [Dependencies] reads the [DependencyMap] of which services take part in
// which migrations and which tables and columns each touches, with the live builds that do not know a migration
// ([UnawareBuild]), and [DependencyMap.SVG] draws it.
//
// Every time a report judges (a phase's duration, which instances are
// live) is a reading of the coordinator's clock. The functions hold
// nothing and are safe for concurrent use; what they return are values.
package report
