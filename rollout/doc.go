// Package rollout turns the parts into a coordinated rollout that a fleet of
// services and its operators can trust.
//
// A [Plan] declares one migration: its expand DDL (with the statements that
// undo it), the columns the expand creates, its backfill jobs, its contract
// DDL, and the [Thresholds] of its gates. Services register their plans at
// startup; the ledger records each plan's definition hash and refuses a
// different plan under the same name ([ErrPlanConflict]).
//
// The ledger lives in the application's database, with a versioned schema
// created and upgraded on demand ([EnsureLedger]): schemashift_migrations
// (phase, stage and version of each migration), schemashift_events (the
// append-only audit trail: every transition, refused or not, with actor,
// reason and time) and schemashift_instances (heartbeats).
//
// A [Coordinator] moves a migration through its [Phase]s — planned,
// expanded, dualwrite, backfill, verify, shadow, live, rampdown, complete,
// contracted — each transition through its gate:
//
//	→ dualwrite   the expand's columns exist
//	→ backfill    every live instance evaluated only dualwrite or later for a whole window
//	→ verify      every backfill job is done
//	→ shadow      every job's verification passed
//	→ live        shadow consistency ≥ threshold over ≥ N comparisons since shadow began
//	→ rampdown    the same, since live began
//	→ complete    every live instance evaluated only rampdown or later for a whole window
//	→ contracted  every live instance evaluated only complete, and made no old-path call,
//	              for a whole window; and the caller confirmed
//
// A refused transition returns a [RefusedError] naming the unmet condition,
// and is recorded. Force skips a gate, needs a reason and is recorded as
// forced. Every transition is a compare-and-set on the ledger row: of two
// coordinators advancing at once, exactly one wins ([ErrConflict]). Until the
// contract, [Coordinator.Rollback] steps back one phase or straight to off;
// at off it undoes the expand.
//
// Each service instance reports through an [Instance] heartbeat which stages
// it evaluated, whether it called the old path and how its shadow
// comparisons went; instances that stop reporting age out. Services get all
// of this from one startup call, [Start], which also serves stages from the
// ledger through the OpenFeature [LedgerProvider] (or through the team's own
// flag service). [Board] is the status board: an http.Handler with an HTML
// page and JSON, read-only unless given an [Authorizer].
//
// # SQLite
//
// The ledger, gates, audit trail, heartbeats, the provider and the board work
// the same on a SQLite pool from the sqlite package. There the ledger row's
// compare-and-set runs under SQLite's one write lock instead of a row lock,
// and the migration's lock, which every transition takes so that none
// commits while another's DDL runs, is a leased row (schemashift_locks)
// rather than a session advisory lock: it holds no connection, so a
// one-connection pool works. What SQLite
// could not do safely — an index built without CONCURRENTLY, a table
// rewritten by DROP COLUMN — is recorded in the audit trail as a "ddl-note"
// event. A SQLite ledger serves the processes of one host, not a fleet
// across machines.
package rollout
