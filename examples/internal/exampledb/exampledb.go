// Package exampledb opens the database an example program runs on, as its
// -db flag asks, so that every example runs on a machine with nothing set
// up: the PostgreSQL server named by DATABASE_URL (in a database of the
// example's own, dropped at the end), else a throwaway cluster started
// from the local server binaries, else — when there are none — an
// embedded SQLite database in a temporary directory.
//
//	which := exampledb.Flag(flag.CommandLine)
//	flag.Parse()
//	db, release, err := exampledb.Open(ctx, os.Stdout, *which, "ordertotals")
//	…
//	defer release()
package exampledb

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/internal/pgtest"
	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/sqlite"
)

// Usage is the help text of the -db flag.
const Usage = "database: auto (DATABASE_URL, else a throwaway PostgreSQL, else SQLite), postgres or sqlite"

// Flag defines the -db flag on fs, default auto.
func Flag(fs *flag.FlagSet) *string { return fs.String("db", "auto", Usage) }

// ErrUnknown is wrapped by the error for a -db value other than auto,
// postgres or sqlite.
var ErrUnknown = errors.New("want auto, postgres or sqlite")

// Open opens the database which names — auto, postgres or sqlite — for
// the example called name, and says on out which one it uses. On
// PostgreSQL the example gets a fresh database named after it; on SQLite,
// the file name.db in a new temporary directory. auto is postgres when a
// server can be had, else sqlite.
//
// The pool is safe for concurrent use. release closes it and removes what
// Open made: the database (and the throwaway cluster), or the directory.
func Open(ctx context.Context, out io.Writer, which, name string) (db *sqlx.DB, release func(), err error) {
	switch which {
	case "auto", "postgres":
		fmt.Fprintln(out, "Starting PostgreSQL (DATABASE_URL if set, else a throwaway cluster)…")
		srv, err := pgtest.Start(ctx, pgtest.Options{URLEnv: "DATABASE_URL"})
		if errors.Is(err, pgtest.ErrNoPostgres) && which == "auto" {
			fmt.Fprintln(out, "No PostgreSQL here; falling back to embedded SQLite.")
			return Open(ctx, out, "sqlite", name)
		}
		if err != nil {
			return nil, nil, err
		}
		url, err := srv.CreateDatabase(ctx, name)
		if err != nil {
			srv.Close()
			return nil, nil, err
		}
		db, err := sqlx.Open("pgx", url)
		if err != nil {
			srv.Close()
			return nil, nil, fmt.Errorf("open database: %w", err)
		}
		return db, func() { db.Close(); srv.Close() }, nil
	case "sqlite":
		dir, err := os.MkdirTemp("", "schemashift-"+name+"-")
		if err != nil {
			return nil, nil, err
		}
		path := filepath.Join(dir, name+".db")
		fmt.Fprintf(out, "Using embedded SQLite at %s.\n", path)
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return db, func() { db.Close(); os.RemoveAll(dir) }, nil
	}
	return nil, nil, fmt.Errorf("-db %q: %w", which, ErrUnknown)
}

// PrintNotes prints on out, one "note:" line each, what the database
// could not do safely in the migration's DDL (on SQLite: an index built
// without CONCURRENTLY, a table rewritten by DROP COLUMN), as the audit
// trail records it.
func PrintNotes(ctx context.Context, out io.Writer, db *sqlx.DB, migration string) error {
	trail, err := ledger.Audit(ctx, db, migration, 0)
	if err != nil {
		return err
	}
	for _, e := range trail {
		if e.Kind == "ddl-note" {
			fmt.Fprintln(out, "note:", e.Reason)
		}
	}
	return nil
}
