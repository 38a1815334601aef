// Package board is the status board of a coordinator's migrations: a
// [Board] is an http.Handler serving an HTML page (GET /) and its data as
// JSON (GET /api/status, a [Status] of one [Migration] per migration,
// with its [Backfill]s, fleet, shadow consistency, recorded query plans
// and the audit trail), the runbook and retrospective of each migration
// and the dependency map (from package report).
//
// It is read-only unless given an [Authorizer] ([WithAuthorizer]); then
// POST /action advances, rolls back, pauses and resumes ([Action]),
// behind a CSRF token, under the actor name the authorizer returns.
//
// [Board.Snapshot] judges everything it shows at one reading of the
// coordinator's clock: the gates, the fleet, the stalls and how long ago
// each was seen. The board reads the coordinator through its exported API
// only (rollout.Coordinator's DB, Now, AgeOut, CheckAt, Plan,
// Migrations), and the ledger, the fleet and the backfills through their
// packages.
package board
