// Command integration is the service integration README.md walks through
// ("Integrating a service"), whole: a users service that opens its pool
// with pgx's database/sql driver, declares the rollout plan of
// users.full_name → given_name + family_name, calls rollout.Start at
// boot, reads and writes users through the dualwrite adapters, mounts the
// status board at /schemashift/ and closes it on shutdown. The operator
// then moves the migration with the schemashift CLI.
//
//	go run ./examples/integration -database-url postgres://app@db/app   # the service's own database
//	go run ./examples/integration                                       # a throwaway one, as -db says
//
// With no -database-url it needs no setup, like the other examples: a
// database of its own on the server named by DATABASE_URL, else a
// throwaway cluster from the local server binaries, else an embedded
// SQLite file (-db auto|postgres|sqlite). The board asks for HTTP basic
// authentication when SCHEMASHIFT_BOARD_OPERATORS lists operators
// ("ada:secret,grace:other"), and is read-only otherwise.
package main

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers pgx's database/sql driver, "pgx"
	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/examples/internal/exampledb"
	"github.com/schemashift/schemashift/rollout"
	"github.com/schemashift/schemashift/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	dbURL := flag.String("database-url", "", "the service's PostgreSQL database; empty: a throwaway one, as -db says")
	which := exampledb.Flag(flag.CommandLine)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *dbURL, *which, os.Getenv("SCHEMASHIFT_BOARD_OPERATORS")); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, dbURL, which, operators string) error {
	db, release, err := database(ctx, os.Stderr, dbURL, which)
	if err != nil {
		return err
	}
	defer release()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ops, err := parseOperators(operators)
	if err != nil {
		return err
	}
	return serve(ctx, os.Stderr, ln, db, ops)
}

// database is the pool the service runs on: url's, or, with none, the
// examples' throwaway database (which: auto, postgres or sqlite).
func database(ctx context.Context, out io.Writer, url, which string) (*sqlx.DB, func(), error) {
	if url == "" {
		return exampledb.Open(ctx, out, which, "integration")
	}
	db, err := openPool(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	return db, func() { db.Close() }, nil
}

// openPool opens the service's pool on PostgreSQL through pgx's
// database/sql driver. schemashift takes it as it is (*sqlx.DB, or the
// *sql.DB of sql.Open("pgx", url) or stdlib.OpenDB): a transition holds
// one connection of it, so any size works.
func openPool(ctx context.Context, url string) (*sqlx.DB, error) {
	db, err := sqlx.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(20)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

const migration = "users_split_name"

// plan is the migration, declared in code and registered by every build
// that takes part: the expand (two nullable columns, through package ddl),
// the backfill of the rows no one has written since, the contract, and
// what the gates hold the fleet to.
var plan = rollout.Plan{
	Migration: migration,
	ExpandOps: []ddl.Op{
		ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"},
		ddl.AddColumn{Table: "users", Column: "family_name", Type: "text"},
	},
	Columns: []rollout.Column{{Table: "users", Column: "given_name"}, {Table: "users", Column: "family_name"}},
	Backfills: []backfill.Job{{Name: migration, Table: "users",
		Set: []backfill.Assign{
			{Column: "given_name", Expr: "split_part(full_name, ' ', 1)"},
			{Column: "family_name", Expr: "substr(full_name, length(split_part(full_name, ' ', 1)) + 2)"},
		},
		// The split does not invert ("Mary Ann" "Smith Jones" splits back
		// as "Mary" "Ann Smith Jones"): Down, the join, tells a row the
		// new path wrote from one changed behind the adapters' back.
		Down: []backfill.Assign{{Column: "full_name", Expr: "given_name || ' ' || family_name"}},
	}},
	ContractOps: []ddl.Op{ddl.DropColumn{Table: "users", Column: "full_name"}},
	Thresholds:  rollout.Thresholds{ShadowConsistency: 0.999, MinComparisons: 1000, Window: 5 * time.Minute},
	Guardrails:  []rollout.Guardrail{{MinConsistency: 0.99, MaxErrorRate: 0.01}},
}

// planFor is plan as the database runs it: on the examples' embedded
// SQLite, which has no split_part, the space is found with instr.
func planFor(db *sqlx.DB) rollout.Plan {
	if db.DriverName() != sqlite.DriverName {
		return plan
	}
	p, job := plan, plan.Backfills[0]
	job.Set = []backfill.Assign{
		{Column: "given_name", Expr: "substr(full_name, 1, instr(full_name, ' ') - 1)"},
		{Column: "family_name", Expr: "substr(full_name, instr(full_name, ' ') + 1)"},
	}
	p.Backfills = []backfill.Job{job}
	return p
}

// requirements is what this build needs of the database whatever the
// stage; Start refuses to run where it is not met.
var requirements = contract.Schema{Tables: []contract.Table{{Name: "users",
	Columns: []contract.Column{{Name: "id", Type: "bigint", Nullable: contract.NotNull}}}}}

// serve runs the service on ln until ctx ends, logging to out; it closes
// ln. operators are the board's (name → password); none: read-only.
func serve(ctx context.Context, out io.Writer, ln net.Listener, db *sqlx.DB, operators map[string]string) error {
	defer ln.Close()
	log := slog.New(slog.NewTextHandler(out, nil))
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS users (id bigint NOT NULL PRIMARY KEY, full_name text)`); err != nil {
		return fmt.Errorf("create users: %w", err) // the table as the old code knows it
	}
	p := planFor(db) // plan, in the string functions of db's database

	// At boot: ensure the ledger, register the plan, check the schema,
	// send a first heartbeat and serve the stages from the ledger.
	svc, err := rollout.Start(ctx, db, rollout.ServiceConfig{Service: "users-api", Build: "v2",
		Plans: []rollout.Plan{p}, Schema: &requirements})
	if err != nil {
		return err
	}
	defer svc.Close() // after the server: a last heartbeat, then the stage source stops

	users, err := newUsers(db, svc)
	if err != nil {
		return err
	}
	defer users.Close()

	// The coordinator is the board's, and runs the plan's guardrails:
	// they act only where one watches. Every instance may: a trip is a
	// compare-and-set, which one of them wins.
	coord, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{p})
	if err != nil {
		return err
	}
	watching, stopWatching := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		// Watch returns only watching's error, once serve returns.
		_ = coord.Watch(watching, 10*time.Second, func(err error) { log.Warn("guardrails", "err", err) })
	}()
	defer func() { stopWatching(); <-watched }()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", users.get)
	mux.HandleFunc("PUT /users/{id}", users.put)
	b, err := mountBoard(mux, coord, operators)
	if err != nil {
		return err
	}

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	srv.RegisterOnShutdown(func() { b.Close() }) // open pages' event streams end, so Shutdown can finish
	shutdown := make(chan error, 1)
	stopShutdown := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		shutdown <- srv.Shutdown(sctx)
	})
	log.Info("serving", "addr", ln.Addr().String(), "board", "http://"+ln.Addr().String()+"/schemashift/")
	err = srv.Serve(ln)
	if stopShutdown() {
		return err // Serve failed on its own
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return <-shutdown // requests in flight are done
}

// User is the API's resource, in the new shape.
type User struct {
	ID         int64  `json:"id"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
}

// users is the repository: each call goes through the adapters, which
// read and write the shape the migration's stage says, per call.
type users struct {
	reads  *dualwrite.Reader[int64, User]
	writes *dualwrite.TxWriter[User]
}

func newUsers(db *sqlx.DB, svc *rollout.Service) (*users, error) {
	flag, err := svc.Flag(migration)
	if err != nil {
		return nil, err
	}
	// The service's observer feeds the heartbeat the gates read: stages
	// evaluated, old-path calls, shadow comparisons, latency, errors.
	reads, err := dualwrite.NewReader(flag, readOld(db), readNew(db), dualwrite.WithObserver(svc.Observer()))
	if err != nil {
		return nil, err
	}
	writes, err := dualwrite.NewTxWriter(db, flag, writeOld, writeNew, dualwrite.WithObserver(svc.Observer()))
	if err != nil {
		return nil, errors.Join(err, reads.Close())
	}
	return &users{reads: reads, writes: writes}, nil
}

// Close waits for the shadow reads in flight.
func (u *users) Close() error { return u.reads.Close() }

func readOld(db *sqlx.DB) dualwrite.ReadFunc[int64, User] {
	return func(ctx context.Context, id int64) (User, error) {
		var full sql.NullString
		if err := db.GetContext(ctx, &full, `SELECT full_name FROM users WHERE id = $1`, id); err != nil {
			return User{}, err
		}
		given, family, _ := strings.Cut(full.String, " ")
		return User{ID: id, GivenName: given, FamilyName: family}, nil
	}
}

func readNew(db *sqlx.DB) dualwrite.ReadFunc[int64, User] {
	return func(ctx context.Context, id int64) (User, error) {
		var g, f sql.NullString
		if err := db.QueryRowxContext(ctx, `SELECT given_name, family_name FROM users WHERE id = $1`, id).Scan(&g, &f); err != nil {
			return User{}, err
		}
		return User{ID: id, GivenName: g.String, FamilyName: f.String}, nil
	}
}

// writeOld and writeNew upsert the whole of their shape, in the one
// transaction the TxWriter runs both in.
func writeOld(ctx context.Context, q sqlx.ExtContext, u User) error {
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, full_name) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name`, u.ID, strings.TrimSpace(u.GivenName+" "+u.FamilyName))
	return err
}

func writeNew(ctx context.Context, q sqlx.ExtContext, u User) error {
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, given_name, family_name) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name`, u.ID, u.GivenName, u.FamilyName)
	return err
}

func (u *users) get(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	user, err := u.reads.Read(r.Context(), id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		http.Error(w, "no such user", http.StatusNotFound)
	case err != nil:
		http.Error(w, "read user: "+err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(user) // a write error: the client went away
	}
}

func (u *users) put(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	var user User
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&user); err != nil || user.GivenName == "" {
		http.Error(w, "want JSON with given_name and family_name", http.StatusBadRequest)
		return
	}
	user.ID = id
	if err := u.writes.Write(r.Context(), user); err != nil {
		http.Error(w, "write user: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// mountBoard serves the status board under /schemashift/. With operators,
// the board asks for HTTP basic authentication (which a browser then
// sends with the board's buttons too) and its actions are recorded under
// the operator's name; without, it is read-only. The board checks its own
// CSRF token and the request's origin before asking the authorizer.
func mountBoard(mux *http.ServeMux, coord *rollout.Coordinator, operators map[string]string) (*board.Board, error) {
	var opts []board.Option
	if len(operators) > 0 {
		opts = append(opts, board.WithAuthorizer(board.AuthorizerFunc(func(r *http.Request, _ board.Action) (string, error) {
			return operator(r, operators)
		})))
	}
	b, err := board.New(coord, opts...)
	if err != nil {
		return nil, err
	}
	var h http.Handler = http.StripPrefix("/schemashift", b)
	if len(operators) > 0 {
		h = basicAuth(h, operators)
	}
	mux.Handle("/schemashift/", h)
	return b, nil
}

// operator is the name of the operator r authenticates as.
func operator(r *http.Request, operators map[string]string) (string, error) {
	name, password, ok := r.BasicAuth()
	want, known := operators[name]
	if !ok || !known || subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 {
		return "", errors.New("unknown operator or wrong password")
	}
	return name, nil
}

// basicAuth lets through the requests of operators only, and asks a
// browser for the credentials of the others.
func basicAuth(next http.Handler, operators map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := operator(r, operators); err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="schemashift board", charset="UTF-8"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// parseOperators reads "name:password,name:password".
func parseOperators(s string) (map[string]string, error) {
	ops := map[string]string{}
	for i, entry := range strings.Split(s, ",") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		name, password, ok := strings.Cut(entry, ":")
		if !ok || name == "" || password == "" { // the entry is not quoted: it may hold a password
			return nil, fmt.Errorf("SCHEMASHIFT_BOARD_OPERATORS: entry %d is not name:password", i+1)
		}
		ops[name] = password
	}
	return ops, nil
}
