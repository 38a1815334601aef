// Command schemashift is the operator's CLI over the rollout ledger and the
// backfills of the services' plans, read back from the ledger.
//
//	schemashift [--database-url URL] [--actor NAME] COMMAND [flags] [args]
//
// Exit codes: 0 done; 1 failed (database, DDL, …); 2 bad input (unknown
// command, flag, migration, job or stage); 3 refused (a gate is unmet, the
// migration moved, confirmation missing, or lint findings).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// usageError is bad input: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// refusedError is a refusal: exit 3.
type refusedError struct{ err error }

func (e refusedError) Error() string { return e.err.Error() }
func (e refusedError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	app := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	err := app.main(ctx, args)
	var ue usageError
	var re refusedError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "schemashift:", err)
		fmt.Fprintln(stderr, "run 'schemashift help' for usage")
		return exitUsage
	case errors.As(err, &re):
		fmt.Fprintln(stderr, "schemashift: refused:", err)
		return exitRefused
	default:
		fmt.Fprintln(stderr, "schemashift:", err)
		return exitFailed
	}
}
