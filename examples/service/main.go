// Command service is a users service as a team would write it: the
// rollout startup hook at boot, an HTTP API whose repository goes through
// the dual adapters, and the status board mounted at /schemashift/.
//
//	go run ./examples/service            # then open http://127.0.0.1:8080/schemashift/
//	curl -X PUT -d '{"given_name":"Ada","family_name":"Lovelace"}' 127.0.0.1:8080/users/1
//	curl 127.0.0.1:8080/users/1
//
// The board is read-only unless SCHEMASHIFT_BOARD_TOKEN is set; then
// actions need the header "Authorization: Bearer <token>" (for scripts),
// or a session: an operator logs in with the token at
// /schemashift/login, which sets a session cookie the board's buttons
// then carry.
//
// Like the quickstart it needs no setup: it uses the PostgreSQL server
// named by DATABASE_URL (in a database of its own, dropped when it stops),
// else a throwaway cluster started from the local server binaries, else —
// when there are none — an embedded SQLite database in a temporary
// directory. -db picks one:
//
//	go run ./examples/service -db sqlite
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"

	"github.com/schemashift/schemashift/board"
	"github.com/schemashift/schemashift/contract"
	"github.com/schemashift/schemashift/ddl"
	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/examples/internal/exampledb"
	"github.com/schemashift/schemashift/rollout"
)

const migration = "users_split_name"

// User is the API's resource.
type User struct {
	ID         int64  `json:"id"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
}

var plan = rollout.Plan{
	Migration: migration,
	ExpandOps: []ddl.Op{
		ddl.AddColumn{Table: "users", Column: "given_name", Type: "text"},
		ddl.AddColumn{Table: "users", Column: "family_name", Type: "text"},
	},
	Columns:     []rollout.Column{{Table: "users", Column: "given_name"}, {Table: "users", Column: "family_name"}},
	ContractOps: []ddl.Op{ddl.DropColumn{Table: "users", Column: "full_name"}},
}

// requirements is what this build needs whatever the stage: the table and
// its key (the new columns are checked by the plan once expanded).
var requirements = contract.Schema{Tables: []contract.Table{{Name: "users",
	Columns: []contract.Column{{Name: "id", Type: "bigint", Nullable: contract.NotNull}}}}}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	which := exampledb.Flag(flag.CommandLine)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err == nil {
		err = serve(ctx, os.Stderr, ln, *which)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

// serve runs the service on ln, over the database which names (auto,
// postgres or sqlite), until ctx ends; it logs to out. It closes ln.
func serve(ctx context.Context, out io.Writer, ln net.Listener, which string) error {
	defer ln.Close()
	log := slog.New(slog.NewTextHandler(out, nil))
	db, release, err := exampledb.Open(ctx, out, which, "service")
	if err != nil {
		return err
	}
	defer release()
	log.Info("database", "driver", db.DriverName(), "at", where(ctx, db))
	if err := createUsers(ctx, db); err != nil {
		return err
	}
	notes, err := ddlNotes(ctx, db)
	if err != nil {
		return err
	}
	for _, n := range notes {
		log.Warn("ddl note", "note", n)
	}
	app, err := newApp(ctx, db, os.Getenv("SCHEMASHIFT_BOARD_TOKEN"))
	if err != nil {
		return err
	}
	defer app.Close()
	hs := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	shutDown := make(chan struct{})
	cancelShutdown := context.AfterFunc(ctx, func() {
		defer close(shutDown)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	addr := ln.Addr().String()
	log.Info("serving", "addr", addr, "board", "http://"+addr+"/schemashift/")
	err = hs.Serve(ln)
	if cancelShutdown() {
		return err // Serve failed on its own
	}
	<-shutDown // requests in flight are done
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// createUsers creates the table as the old code knows it. id is declared
// NOT NULL, which PostgreSQL implies for a primary key and SQLite does not
// (only an "integer PRIMARY KEY" is its rowid): the build's requirements
// say the key is never NULL.
func createUsers(ctx context.Context, db *sqlx.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS users (id bigint NOT NULL PRIMARY KEY, full_name text)`); err != nil {
		return fmt.Errorf("create users: %w", err)
	}
	return nil
}

// ddlNotes is what the plan's DDL gives up on this database against the
// safe PostgreSQL form (on SQLite: DROP COLUMN rewrites the table under the
// database write lock), as the expand and the contract will record it in
// the audit trail the board shows. None on PostgreSQL.
func ddlNotes(ctx context.Context, db *sqlx.DB) ([]string, error) {
	e, err := ddl.NewExecutor(db)
	if err != nil {
		return nil, err
	}
	st, err := e.Plan(ctx, slices.Concat(plan.ExpandOps, plan.ContractOps))
	if err != nil {
		return nil, fmt.Errorf("plan ddl: %w", err)
	}
	var notes []string
	for _, s := range st {
		if s.Note != "" {
			notes = append(notes, s.Note+" ("+s.SQL+")")
		}
	}
	return notes, nil
}

// app is the service: its routes, its repository, its rollout hook.
type app struct {
	http.Handler
	svc    *rollout.Service
	board  *board.Board
	reads  *dualwrite.Reader[int64, User]
	writes *dualwrite.TxWriter[User]
}

func newApp(ctx context.Context, db *sqlx.DB, boardToken string) (*app, error) {
	svc, err := rollout.Start(ctx, db, rollout.ServiceConfig{Service: "users-api", Build: "v2",
		Plans: []rollout.Plan{plan}, Schema: &requirements, Heartbeat: time.Second, Poll: 500 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	flag, err := svc.Flag(migration)
	if err != nil {
		return nil, errors.Join(err, svc.Close())
	}
	a := &app{svc: svc}
	if a.reads, err = dualwrite.NewReader(flag, readOld(db), readNew(db), dualwrite.WithObserver(svc.Observer())); err != nil {
		return nil, errors.Join(err, svc.Close())
	}
	if a.writes, err = dualwrite.NewTxWriter(db, flag, writeOld, writeNew, dualwrite.WithObserver(svc.Observer())); err != nil {
		return nil, errors.Join(err, svc.Close())
	}
	coord, err := rollout.NewCoordinator(ctx, db, []rollout.Plan{plan})
	if err != nil {
		return nil, errors.Join(err, svc.Close())
	}
	var opts []board.Option
	ops := &operators{token: boardToken, sessions: map[string]string{}}
	if boardToken != "" {
		opts = append(opts, board.WithAuthorizer(ops))
	}
	board, err := board.New(coord, opts...)
	if err != nil {
		return nil, errors.Join(err, svc.Close())
	}
	a.board = board
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", a.getUser)
	mux.HandleFunc("PUT /users/{id}", a.putUser)
	if boardToken != "" {
		mux.HandleFunc("GET /schemashift/login", ops.loginPage)
		mux.Handle("POST /schemashift/login", http.NewCrossOriginProtection().Handler(http.HandlerFunc(ops.login)))
	}
	mux.Handle("/schemashift/", http.StripPrefix("/schemashift", board))
	a.Handler = mux
	return a, nil
}

// Close ends the board's event streams, and stops the shadow reads and
// the rollout hook.
func (a *app) Close() error { return errors.Join(a.board.Close(), a.reads.Close(), a.svc.Close()) }

// operators authorizes the board's actions: a script's carrying the token
// as a bearer (the actor is its X-Operator header, or "board"), or a
// browser's carrying the cookie of a session the token opened at
// /schemashift/login (the actor is the name given there). The board
// checks its own CSRF token and the request's origin before asking. It is
// safe for concurrent use.
type operators struct {
	token    string
	mu       sync.Mutex
	sessions map[string]string // session id → operator
}

const sessionCookie = "service_operator"

func (o *operators) Authorize(r *http.Request, _ board.Action) (string, error) {
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if subtle.ConstantTimeCompare([]byte(got), []byte(o.token)) != 1 {
			return "", errors.New("wrong bearer token")
		}
		if op := r.Header.Get("X-Operator"); op != "" {
			return op, nil
		}
		return "board", nil
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		o.mu.Lock()
		op, ok := o.sessions[c.Value]
		o.mu.Unlock()
		if ok {
			return op, nil
		}
	}
	return "", errors.New("log in at /schemashift/login (or send the token as a bearer)")
}

var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in · schemashift board</title></head>
<body style="font: 14px system-ui, sans-serif; margin: 2rem">
<h1>Log in to the board</h1>{{if .}}<p style="color: #b3261e">{{.}}</p>{{end}}
<form method="post" action="login">
<p><label>Your name <input name="operator" required autocomplete="username"></label></p>
<p><label>Board token <input name="token" type="password" required autocomplete="current-password"></label></p>
<p><button type="submit">Log in</button> · <a href="./">the board</a></p>
</form></body></html>`))

func (o *operators) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	_ = loginForm.Execute(w, r.URL.Query().Get("error")) // a write error: the browser went away
}

// login opens a session for the operator named, when the token is right.
func (o *operators) login(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimSpace(r.PostFormValue("operator"))
	if op == "" || subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), []byte(o.token)) != 1 {
		http.Redirect(w, r, "login?error="+url.QueryEscape("wrong token, or no name"), http.StatusSeeOther)
		return
	}
	id := rand.Text()
	o.mu.Lock()
	o.sessions[id] = op
	o.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/schemashift/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "./", http.StatusSeeOther)
}

// where says which database db is: the server and database of its
// connection string with the password masked, or, for an embedded one,
// that it is (Open printed its file).
func where(ctx context.Context, db *sqlx.DB) string {
	conn, err := db.Conn(ctx)
	if err != nil {
		return "unknown: " + err.Error()
	}
	defer conn.Close()
	at := "embedded, in the file named above"
	_ = conn.Raw(func(dc any) error { // the func returns no error
		if c, ok := dc.(interface{ Conn() *pgx.Conn }); ok {
			at = masked(c.Conn().Config().ConnString())
		}
		return nil
	})
	return at
}

// masked is a connection string with its password replaced: a URL's, or
// a password=… keyword's.
func masked(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return passwordKeyword.ReplaceAllString(s, "${1}xxxxx")
}

var passwordKeyword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

func (a *app) getUser(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	u, err := a.reads.Read(r.Context(), id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		http.Error(w, "no such user", http.StatusNotFound)
	case err != nil:
		http.Error(w, "read user: "+err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(u)
	}
}

func (a *app) putUser(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	var u User
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&u); err != nil || u.GivenName == "" {
		http.Error(w, "want JSON with given_name and family_name", http.StatusBadRequest)
		return
	}
	u.ID = id
	if err := a.writes.Write(r.Context(), u); err != nil {
		http.Error(w, "write user: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

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
