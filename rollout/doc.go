// Package rollout turns the parts into a coordinated rollout that a fleet of
// services and its operators can trust: the plans, the phases' gates and
// guardrails, the coordinator that moves a migration through them, and
// the startup hook of a service. What it stands on has a package each:
// the ledger (package ledger: each migration's [ledger.Phase] and
// [ledger.Status], the audit trail of [ledger.Event]s, the stored
// plans), the fleet (package fleet: each instance's heartbeat,
// [fleet.Instance]) and the ledger's OpenFeature provider
// ([ledgerflag.Provider]). What reads it has one too: the status board
// (package board) and the reports (package report: runbook,
// retrospective, dependency map).
//
// A [Plan] declares one migration: its expand DDL (with the statements that
// undo it), the columns the expand creates, its backfill jobs, its contract
// DDL, and the [Thresholds] of its gates. Services register their plans at
// startup ([Register], [Start], [NewCoordinator]). A plan is checked in full
// first: every ddl operation is rendered, up and down, for the database and
// server version it will run on, and parsed by PostgreSQL's parser (a name
// over 63 bytes, an empty table, an unparsable type, default or predicate,
// an expand operation that cannot be undone), raw steps are linted, jobs,
// thresholds and guardrails are checked. An invalid plan is refused with
// [ErrInvalidPlan] before anything is stored, so its correction registers
// under the same name; of several plans given at once, none is stored.
// (An operation valid but impossible on SQLite, such as a constraint added
// to an existing table, registers; the runbook shows it and the advance
// refuses it.)
//
// A plan may set a [Sunset]: the date by which the old path should be
// gone. [Coordinator.Deadline] judges it by the coordinator's clock (the
// time left; ok, warning, overdue) and, once overdue, names the live
// instances still calling the old path, recording the first sighting in
// the audit trail once.
//
// The ledger records each plan's definition hash and refuses a different
// plan under the same name ([ErrPlanConflict]). The hash ("v2:…") is of the
// plan as the ledger stores it: the ddl operations in their marshalled
// form, every field of every step, column, job, threshold and guardrail
// (hot queries aside), so that no changed field goes unseen. A row
// registered by a build before it holds a hash of the old form, which left
// most operation fields out: the same plan still registers there (the old
// hash matches, and so does the stored definition, when there is one), a
// plan changed in a field the old hash missed is refused through the
// stored definition, and the old hash stays in the row so that instances
// of the older build still register too.
//
// The ledger lives in the application's database, with a versioned schema
// created and upgraded on demand ([ledger.Ensure]): schemashift_migrations
// (phase, stage and version of each migration), schemashift_events (the
// append-only audit trail: every transition, refused or not, with actor,
// reason and time) and schemashift_instances (heartbeats).
//
// A [Coordinator] moves a migration through its [ledger.Phase]s — planned,
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
// A plan adds gate conditions of its own as milestone checks ([Check]: an
// SQL assertion that must return no rows, run read-only and rolled back;
// an HTTP GET that must answer 2xx; a Go function registered with
// [WithCheck]), judged as the gate "checks" of the transitions they name,
// on every advance, each run recorded ([Coordinator.CheckRuns]).
//
// A refused transition returns a [RefusedError] naming the unmet condition,
// and is recorded. Force skips a gate, needs a reason and is recorded as
// forced. Every transition is a compare-and-set on the ledger row: of two
// coordinators advancing at once, exactly one wins ([ErrConflict]). Until the
// contract, [Coordinator.Rollback] steps back one phase or straight to off;
// at off it undoes the expand.
//
// A transition holds one connection of the pool from the migration's lock
// to its end and does all its work on it, the ddl operations (concurrent
// index builds, outside any transaction) included: any pool size works,
// one connection included, and n transitions at once need at most n
// connections between them. On PostgreSQL the migration's lock is a
// session advisory lock on that connection, waited for in short tries (a
// waiter blocked in one statement would hold a snapshot that the holder's
// CREATE INDEX CONCURRENTLY waits for).
//
// Each service instance reports through a [fleet.Instance] heartbeat which
// stages it evaluated, whether it called the old path and how its shadow
// comparisons went; instances that stop reporting age out. Services get all
// of this from one startup call, [Start], which also serves stages from the
// ledger through the OpenFeature [ledgerflag.Provider] (or through the
// team's own flag service). The board package's Board is the status board:
// an http.Handler with an HTML page and JSON, read-only unless given an
// authorizer; it and the reports read the coordinator through its
// exported API ([Coordinator.DB], [Coordinator.Now], [Coordinator.CheckAt]).
//
// # Owner and approvals
//
// A plan names its [Plan.Owner] and, per kind of advance, a [Policy]: who
// may perform it and how many distinct others must approve it first
// ([Coordinator.Approve]; [Coordinator.RequestApproval] asks, and the one
// who asks cannot approve). An approval is of one version of the
// migration and expires once it moves; no one's approval counts for
// their own advance; an advance the policy holds is refused with a
// [PolicyError] ([ErrNotApproved], [ErrNotPermitted]) saying what is
// missing, forced advances included; rollbacks are never held. Every
// approval and refusal is in the audit trail. Identities are the
// callers' ([Request.Actor], [Approval.Actor]: the board's authorizer,
// the CLI's --actor or SCHEMASHIFT_ACTOR); the coordinator authenticates
// no one. [Coordinator.Approvals] says what the next advance lacks.
//
// # Notices and schedules
//
// [WithNotifier] tells a [Notifier] of every [Notice] (a transition, a
// refusal, a guardrail trip, a schedule made, run or cancelled, a
// scheduled advance's gate met), after the ledger committed it, in order,
// from a bounded queue whose delivery goroutine runs only while notices
// wait: a slow or panicking Notifier never holds or breaks a transition
// ([Coordinator.FlushNotices], [Coordinator.DroppedNotices]). A [Webhook]
// is a Notifier that POSTs them, signed ([VerifyWebhook]), retrying.
// [Coordinator.Schedule] schedules the next advance for a time, in the
// ledger, announced at once; [Coordinator.RunSchedules] (the caller's
// loop) makes it then if its gate is met, waiting for an unmet one until
// the schedule's deadline and cancelling it then, once across any number
// of coordinators; [Coordinator.CancelSchedule] cancels it.
//
// # Pools
//
// [NewCoordinator], [Open], [OpenReadOnly], [Register] and [Start] take a [Pool]: a
// *sql.DB (from sql.Open, or pgx's stdlib.OpenDB) or a *sqlx.DB, of a
// supported database, told from its driver; one of another driver is
// refused with [ErrInvalidArgument]. A *sql.DB is wrapped once, sharing
// its pool: the coordinator, the service's heartbeat and its stage source
// hold it until they end, and the caller closes it after them.
// [Coordinator.DB] returns that pool as a *sqlx.DB, for the readers of
// the ledger and the fleet. Both kinds of pool are safe for concurrent
// use; a Coordinator on one is too, from any number of goroutines and
// processes.
//
// The query-plan watch ([HotQuery], [Coordinator.QueryPlans]) stays here
// rather than with the reports: the transition runs it, before the expand
// and after each DDL step, at its clock reading, and a plan's hot queries
// are watched without the caller wiring anything.
//
// # Time
//
// Every time a gate or a guardrail decides on is a time of an injected
// clock, read once per decision and passed to the database as a
// parameter, never the database's now(): the coordinator's ([WithClock])
// judges the fleet's windows, which instances aged out, the AdvanceWhenMet
// deadline, stalled backfills, the board's "ago" and a retrospective's
// current phase, and stamps phase_since, updated_at, the events, query
// plans and trips; the instances' ([fleet.WithClock],
// [ServiceConfig].Clock) stamp first_seen, last_seen, the stages seen and
// the last old-path call; the backfills the coordinator runs and verifies
// get its clock, so that "verified after the job finished" compares two
// times of one clock. All default to time.Now; a fleet and its
// coordinators should share one clock, or run on hosts whose clocks agree
// to well within the smaller of the coordinator's age-out ([WithAgeOut],
// default one minute) and the plan's window: an instance whose clock is
// behind by more than the age-out (less its heartbeat interval) stamps a
// last_seen that already looks aged out, so the fleet gates do not see it
// at all, and a contract can pass while it still calls the old path; one
// ahead by a window looks seen for a whole window before it was. Keep the
// skew under a few seconds (NTP does), and the age-out and the window
// many times larger. The migration lock's lease on SQLite is not a time
// of the migration: it is judged in real time (time.Now), whatever the
// clocks given. [Register], outside a coordinator, stamps time.Now.
// The tables keep their now() column defaults, but no write leaves a time
// to them. Intervals that wait (heartbeats, polls, Watch, lock retries)
// are real time: a test moves the clock past a window instead of sleeping
// through it.
//
// # SQLite
//
// The ledger, gates, audit trail, heartbeats, the provider and the board work
// the same on a SQLite pool from the sqlite package. There the ledger row's
// compare-and-set runs under SQLite's one write lock instead of a row lock,
// and the migration's lock, which every transition takes so that none
// commits while another's DDL runs, is a leased row (schemashift_locks)
// rather than a session advisory lock: it holds no connection. What SQLite
// could not do safely — an index built without CONCURRENTLY, a table
// rewritten by DROP COLUMN — is recorded in the audit trail as a "ddl-note"
// event. A SQLite ledger serves the processes of one host, not a fleet
// across machines.
package rollout
