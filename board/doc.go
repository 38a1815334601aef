// Package board is the status board of a coordinator's migrations: a
// [Board] is an http.Handler serving an HTML page (GET /) and its data as
// JSON (GET /api/status, a [Status] of one [Migration] per migration,
// with its [Backfill]s, fleet, shadow consistency against the plan's
// threshold, each [Path]'s calls, errors and latency, recorded query plans
// and the audit trail), the dependency map (from package report), and per
// migration (its name path-escaped, "/" and all):
//
//   - GET /migrations/{name}: its page, every phase ([PhaseRow]) with when it
//     was entered, by whom and how long it lasted, the next gate and what it
//     still needs, the backfills with their ETA, and charts drawn on the
//     server as inline SVG (each backfill's rows/s and chunk time, from
//     backfill.History; each path's latency and error rate; and from the
//     heartbeats' samples, fleet.Samples, over the chart window
//     ([WithChartWindow], 6 hours by default): the fleet's shadow
//     consistency with the plan's threshold as a line and the steps under
//     it marked, each path's p50 and p99 per instance, and each instance's
//     error rate per path, a legend naming the instances — the eight with
//     the most calls; the others are counted);
//   - GET /runbook/{name} and GET /retrospective/{name}: the runbook and the
//     retrospective as pages, or as Markdown (?format=md, or Accept:
//     text/markdown) and JSON (?format=json).
//
// The pages update themselves: GET /events is a stream of server-sent
// events, a "change" whenever what a page shows does (the ledger, a gate,
// the fleet's members, stages, builds and counts, a backfill's progress;
// not the mere passing of time, such as a heartbeat that only moves when
// an instance was last seen). One poller per board reads it every poll
// interval ([WithPollInterval]) for all the open streams at once: started
// by the first, stopped when the last goes or the board is closed
// ([Board.Close]). At most [WithMaxStreams] streams are open at once (64
// by default; beyond, 503 with Retry-After). A failure to read the board
// is told to the pages as "unavailable" only, the error itself to the
// board's logger ([WithLogger]). The page's one script, inlined under the
// response's Content-Security-Policy nonce, then fetches the page again
// and swaps its live part. Nothing is loaded from elsewhere.
//
// The board may be mounted under a path prefix (http.StripPrefix): its
// links are relative, and an action's redirect is a reference relative
// to the URL the form was posted to.
//
// It is read-only unless given an [Authorizer] ([WithAuthorizer]); then
// POST /action advances, rolls back, pauses and resumes ([Action]),
// behind a CSRF token and net/http's CrossOriginProtection (another
// origin may be trusted with [WithTrustedOrigin]), under the actor name
// the authorizer returns.
//
// [Board.Snapshot] judges everything it shows at one reading of the
// coordinator's clock: the gates, the fleet, the stalls and how long ago
// each was seen. The board reads the coordinator through its exported API
// only (rollout.Coordinator's DB, Now, AgeOut, CheckAt, CheckRuns, Plan,
// Migrations), and the ledger, the fleet and the backfills through their
// packages.
package board
