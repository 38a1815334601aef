// Command schemashift is the operator's CLI over the rollout ledger and the
// backfills of the services' plans, read back from the ledger.
//
//	schemashift COMMAND [flags] [args]
//
// Its commands and flags follow the conventions of Go's operator tools
// (it is built on spf13/cobra): `schemashift help COMMAND` or `COMMAND
// --help` shows a command's help, `--version` (or `version`) the build,
// global flags stand anywhere, an unknown command is answered with the
// commands it may have meant.
//
// # Connection and identity
//
// The database is --database-url, else $SCHEMASHIFT_DATABASE_URL, else
// $DATABASE_URL: a PostgreSQL URL (or keyword/value string), or
// sqlite:PATH for an existing SQLite file. Who acts, for the audit trail,
// is --actor, else $SCHEMASHIFT_ACTOR, else $USER.
//
// # Reading and writing the ledger
//
// The commands that only read (status, audit, runbook, retro, backfill
// status) write nothing, lock nothing and create nothing: a role that may
// only SELECT the ledger runs them. They need a ledger at this build's
// version; on a database without one they fail with "the ledger is not
// initialised: run `schemashift init`" (exit 2, as a database named by
// mistake is bad input), on a ledger of an older build with "the ledger
// is at version N, this build needs M: run `schemashift init`" (exit 2).
// The ledger is created or upgraded by `schemashift init` and by every
// command that changes state (advance, rollback, force, backfill run,
// backfill estimate, verify), which need the rights to do so.
//
// # Output for scripts
//
// Every command a script may call takes --json and then prints one JSON
// document on stdout: status, an array of migrations (the board's JSON);
// advance, rollback and force, the migration's new ledger status with
// "action" (advance, rollback, force-advance, force-rollback); backfill
// run, an array of the jobs' progress when they finish; backfill
// estimate, an array of the jobs' estimates (backfill.Estimate: job,
// rows, walked, sample_chunks, sample_rows, sample_changed, chunk_size,
// rows_per_second, pace, duration_ns, finish, changed, dead_tuples, wal_bytes,
// -1 where not read); backfill pause,
// resume, cancel and status, the job's progress (backfill.Progress: its
// fields in snake case, job, status, rows_done, total_estimate, rate,
// eta_ns, …); verify, an array of
// reports; lint, an array of findings (file, line, column, rule,
// message, statement, fix); retro, the retrospective; audit, an array of
// events; approve, the approval as recorded (migration, to, force,
// version, actor, reason, request, at); init, {"ledger_version": N}; version, {"version", "go",
// "ledger_version"}. A command that fails before printing its document
// prints instead
//
//	{"error": {"message": "…", "kind": "failed"|"bad input"|"refused", "exit_code": 1|2|3}}
//
// Messages and the progress of a backfill go to stderr; the progress is a
// bar redrawn in place only when stderr is a terminal, and plain lines
// otherwise (every tenth of the job, every 10 s, and at each change of
// status). Its rate and ETA are those of the last 10 s of the job's
// running time: a pause neither lowers the rate nor holds it down after.
//
// # Exit codes
//
// 0 done; 1 failed (database, DDL, …); 2 bad input (unknown command,
// flag, migration, job or stage; a missing argument; an unparseable
// database URL; a database without a ledger at this build's version);
// 3 refused (a gate is unmet, the migration moved, confirmation missing,
// verification found divergent rows, or lint findings).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitRefused = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
