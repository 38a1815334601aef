package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

// version is the build's version, set with -ldflags "-X main.version=…";
// empty, the module's version as Go recorded it.
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// The environment variables of the connection and the identity. The
// older DATABASE_URL still works, after SCHEMASHIFT_DATABASE_URL.
const (
	envDatabaseURL = "SCHEMASHIFT_DATABASE_URL"
	envActor       = "SCHEMASHIFT_ACTOR"
)

// cli is one run of the command line: what it writes to, what it found
// in the environment, and the database it opened (closed by execute).
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	terminal       bool // stderr is a terminal: the progress bar redraws in place
	progressEvery  time.Duration

	dbURL, actor string
	db           *sqlx.DB

	json    bool // the command prints JSON (so its error too, unless it printed its document)
	printed bool // the command printed its JSON document
	ran     bool // flags and arguments were accepted: an error before is bad input
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now, terminal: isTerminal(stderr),
		progressEvery: 200 * time.Millisecond}
	return c.execute(ctx, args)
}

// isTerminal reports whether w is a terminal. go-isatty, which the module
// already requires (through the SQLite driver), answers it for every
// platform and Cygwin's terminals.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// usageError is bad input: exit 2. With usage, the command's usage
// follows the message (a flag or an argument cobra refused).
type usageError struct {
	msg   string
	usage bool
}

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{msg: fmt.Sprintf(format, args...)} }

// refusedError is a refusal: exit 3.
type refusedError struct{ err error }

func (e refusedError) Error() string { return e.err.Error() }
func (e refusedError) Unwrap() error { return e.err }

// execute runs args and turns the outcome into an exit code, printing
// the error once, on stderr (and as JSON on stdout for a --json command
// that printed nothing else).
func (c *cli) execute(ctx context.Context, args []string) int {
	root := c.root()
	root.SetArgs(args)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if c.db != nil {
		c.db.Close()
	}
	if err == nil {
		return exitOK
	}
	var ue usageError
	var re refusedError
	if !c.ran && !errors.As(err, &ue) {
		ue = usageError{msg: err.Error(), usage: true} // cobra's: a flag, an argument
		err = ue
	}
	code, kind := exitFailed, "failed"
	switch {
	case errors.As(err, &ue):
		code, kind = exitUsage, "bad input"
		fmt.Fprintln(c.stderr, "schemashift:", err)
		if ue.usage && cmd != nil {
			fmt.Fprint(c.stderr, "\n"+cmd.UsageString())
		} else {
			path := "schemashift"
			if cmd != nil && cmd != root && cmd.Name() != "help" {
				path = cmd.CommandPath()
			}
			fmt.Fprintf(c.stderr, "Run '%s --help' for usage.\n", path)
		}
	case errors.As(err, &re):
		code, kind = exitRefused, "refused"
		fmt.Fprintln(c.stderr, "schemashift: refused:", err)
	default:
		fmt.Fprintln(c.stderr, "schemashift:", err)
	}
	if c.json && !c.printed {
		type failure struct {
			Message  string `json:"message"`
			Kind     string `json:"kind"`
			ExitCode int    `json:"exit_code"`
		}
		_ = c.printJSON(struct { //nolint:errcheck // stdout failing too: the exit code still tells
			Error failure `json:"error"`
		}{failure{err.Error(), kind, code}})
	}
	return code
}

const rootLong = `schemashift moves a migration through its phases across a running fleet
(expand, dual writes, backfill, verify, shadow reads, live, contract) and
runs its backfills, over the ledger in the application's own database.

The database is --database-url, else $SCHEMASHIFT_DATABASE_URL, else
$DATABASE_URL (a PostgreSQL URL, or sqlite:PATH for an existing SQLite
file). Who acts is --actor, else $SCHEMASHIFT_ACTOR, else $USER.

status, audit, runbook, retro and backfill status only read: a role that
may only SELECT the ledger runs them. init, and every command that changes
state, create or upgrade the ledger.

Commands a script may call take --json: one JSON document on stdout.
Exit codes: 0 done, 1 failed, 2 bad input, 3 refused.`

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "schemashift",
		Short:         "Change a schema in phases across a running fleet",
		Long:          rootLong,
		Version:       buildVersion(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		// Runnable only to answer an unknown command (or none) as bad input
		// with what it may have meant, instead of printing help.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{msg: "no command", usage: true}
			}
			return usageError{msg: unknown("command", cmd, args[0])}
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			c.ran = true
			return nil
		},
	}
	root.SuggestionsMinimumDistance = 2
	// The root and backfill run only to refuse an unknown command or
	// action: their usage shows their commands, not a run of their own.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetVersionTemplate(fmt.Sprintf("schemashift {{.Version}} (ledger version %d)\n", ledger.SchemaVersion()))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{msg: err.Error(), usage: true} })
	pf := root.PersistentFlags()
	pf.StringVar(&c.dbURL, "database-url", "", "PostgreSQL URL, or sqlite:PATH for a SQLite file (env "+envDatabaseURL+", else DATABASE_URL)")
	pf.StringVar(&c.actor, "actor", "", "who acts, for the audit trail (env "+envActor+", else USER)")
	root.SetHelpCommand(c.helpCommand(root))
	root.AddCommand(c.initCommand(), c.statusCommand(), c.advanceCommand(), c.rollbackCommand(), c.forceCommand(),
		c.backfillCommand(), c.verifyCommand(), c.lintCommand(), c.runbookCommand(), c.retroCommand(), c.auditCommand(),
		c.versionCommand(), c.approveCommand(), c.scheduleCommand())
	return root
}

// unknown is the message for an unknown command (or help topic), with
// the commands it may have meant.
func unknown(what string, parent *cobra.Command, name string) string {
	msg := fmt.Sprintf("unknown %s %q for %q", what, name, parent.CommandPath())
	if s := parent.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
	}
	return msg
}

// helpCommand is `help [COMMAND…]`: the command's help on stdout, or an
// unknown topic as bad input.
func (c *cli) helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Show a command's help",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				parent := root
				if target != nil {
					parent = target
				}
				return usageError{msg: unknown("help topic", parent, strings.Join(rest, " "))}
			}
			target.InitDefaultHelpFlag() // as COMMAND --help shows it
			return target.Help()
		},
	}
}

// args is a cobra.PositionalArgs that wants between min and max
// arguments (max < 0: no limit), refused as bad input with the usage.
func args(minArgs, maxArgs int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) < minArgs || maxArgs >= 0 && len(a) > maxArgs {
			want := "one " + what
			if minArgs == 0 {
				want = "at most one " + what
			}
			return usageError{msg: fmt.Sprintf("%s: want %s, got %d arguments", cmd.CommandPath(), want, len(a)), usage: true}
		}
		return nil
	}
}

func (c *cli) jsonFlag(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&c.json, "json", false, "print "+what+" as JSON")
}

// open opens the database the flags or the environment name, once.
func (c *cli) open(ctx context.Context) (*sqlx.DB, error) {
	if c.db != nil {
		return c.db, nil
	}
	if c.dbURL == "" {
		c.dbURL = c.getenv(envDatabaseURL)
	}
	if c.dbURL == "" {
		c.dbURL = c.getenv("DATABASE_URL")
	}
	if c.dbURL == "" {
		return nil, usagef("no database: pass --database-url or set %s", envDatabaseURL)
	}
	db, err := openDatabase(ctx, c.dbURL)
	if err != nil {
		return nil, err
	}
	c.db = db
	return db, nil
}

func (c *cli) who() string {
	for _, a := range []string{c.actor, c.getenv(envActor), c.getenv("USER")} {
		if a != "" {
			return a
		}
	}
	return "cli"
}

// openDatabase opens a PostgreSQL URL, or the SQLite database file named
// by "sqlite:PATH" (which must exist: a typo should not create an empty
// database that knows no migration). A URL that does not parse is bad
// input; one that does not connect, a failure.
func openDatabase(ctx context.Context, dbURL string) (*sqlx.DB, error) {
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		if _, err := os.Stat(path); err != nil {
			return nil, usagef("database %s: no such SQLite database file", dbURL)
		}
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		return db, nil
	}
	// The driver parses the URL only when it first connects, and then
	// its error reads as a failed connection.
	if _, err := pgx.ParseConfig(dbURL); err != nil {
		return nil, usagef("database URL: %v", err)
	}
	db, err := sqlx.Open("pgx", dbURL)
	if err != nil {
		return nil, usagef("database URL: %v", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return db, nil
}

// coordinator opens the coordinator of the ledger's plans: read-only
// (writing nothing, for a role that may only SELECT) or, for a command
// that changes state, creating or upgrading the ledger.
func (c *cli) coordinator(ctx context.Context, readOnly bool) (*rollout.Coordinator, error) {
	db, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	var co *rollout.Coordinator
	if readOnly {
		co, err = rollout.OpenReadOnly(ctx, db)
	} else {
		co, err = rollout.Open(ctx, db)
	}
	return co, classify(err)
}

// classify turns library errors into exit codes.
func classify(err error) error {
	var ve *ledger.VersionError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrNotInitialised):
		return usagef("%v: run `schemashift init`", ledger.ErrNotInitialised)
	case errors.As(err, &ve) && ve.Newer():
		return usagef("%v: upgrade schemashift", ve)
	case errors.As(err, &ve):
		return usagef("%v: run `schemashift init`", ve)
	case errors.Is(err, ledger.ErrUnknownMigration), errors.Is(err, backfill.ErrUnknownJob), errors.Is(err, flags.ErrUnknownStage),
		errors.Is(err, rollout.ErrReasonRequired), errors.Is(err, backfill.ErrNoInverse):
		return usageError{msg: err.Error()}
	case errors.Is(err, rollout.ErrGateRefused), errors.Is(err, rollout.ErrConflict), errors.Is(err, rollout.ErrConfirmRequired),
		errors.Is(err, rollout.ErrIrreversible), errors.Is(err, rollout.ErrNotApproved), errors.Is(err, rollout.ErrNotPermitted), errors.Is(err, rollout.ErrSelfApproval):
		return refusedError{err}
	}
	return err
}

func (c *cli) printJSON(v any) error {
	c.printed = true
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) initCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the ledger, or upgrade it to this build's version",
		Long: `Create the ledger's tables, or upgrade them to this build's version (safe
to run at any time, from any number of processes). The commands that only
read need a ledger at this build's version and never create one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			if err := ledger.Ensure(cmd.Context(), db); err != nil {
				return classify(err)
			}
			if c.json {
				return c.printJSON(map[string]int{"ledger_version": ledger.SchemaVersion()})
			}
			fmt.Fprintf(c.stdout, "ledger at version %d\n", ledger.SchemaVersion())
			return nil
		},
	}
	c.jsonFlag(cmd, "the ledger's version")
	return cmd
}

func (c *cli) versionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the build's version and the ledger version it needs",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if c.json {
				return c.printJSON(struct {
					Version       string `json:"version"`
					Go            string `json:"go"`
					LedgerVersion int    `json:"ledger_version"`
				}{buildVersion(), runtime.Version(), ledger.SchemaVersion()})
			}
			fmt.Fprintf(c.stdout, "schemashift %s (ledger version %d, %s)\n", buildVersion(), ledger.SchemaVersion(), runtime.Version())
			return nil
		},
	}
	c.jsonFlag(cmd, "the version")
	return cmd
}
