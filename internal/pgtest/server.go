package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	readyTimeout    = 30 * time.Second
	shutdownTimeout = 10 * time.Second
	portAttempts    = 3
	maxIdentLen     = 63 // NAMEDATALEN-1: longer names are silently truncated
)

// errClosed is returned by methods called after [Server.Close].
var errClosed = errors.New("server closed")

// Options configures [Start]. The zero value starts a private cluster.
type Options struct {
	// URLEnv names an environment variable that, when set and non-empty,
	// holds the URL of an existing server to use instead of starting a
	// private cluster. The URL must connect as a role that may
	// CREATE DATABASE (and drop the databases it created).
	URLEnv string

	search   *binSearch          // nil: defaultSearch; replaced by tests
	pickPort func() (int, error) // nil: freePort; replaced by tests
}

// Server is a PostgreSQL server for tests: either an existing one named by
// [Options.URLEnv] or a private cluster started by [Start].
//
// A Server is safe for concurrent use. It must be closed with [Server.Close],
// which stops a private cluster and removes its files, or drops the databases
// created on an existing server.
type Server struct {
	url string

	// A private cluster only; dir and binDir are empty for an existing server.
	dir    string
	binDir string // where initdb and postgres came from
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
	log    *os.File

	seq atomic.Uint64 // makes database names unique within this Server

	mu      sync.Mutex
	closed  bool
	ops     sync.WaitGroup  // database operations in flight; Close waits for them
	created map[string]bool // database name -> still exists

	closeOnce sync.Once
	closeErr  error
}

// Start returns a server for tests: the one named by opts.URLEnv when that
// variable is set, otherwise a fresh private cluster, ready to accept
// connections. ctx bounds only the startup; the cluster runs until
// [Server.Close] (or until the process dies: the postmaster is told to quit
// with its parent).
//
// The binaries are those in the directory named by [BinDirEnv] when it is
// set, else the machine's (see the package doc); a server named by
// opts.URLEnv takes precedence over both. When no server binaries are found,
// the error wraps [ErrNoPostgres].
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.URLEnv != "" {
		if u := os.Getenv(opts.URLEnv); u != "" {
			return useExisting(ctx, opts.URLEnv, u)
		}
	}
	search := defaultSearch()
	if opts.search != nil {
		search = *opts.search
	}
	binDir, err := findBinDir(ctx, search)
	if err != nil && search.binDir != "" {
		return nil, fmt.Errorf("find postgres: %w", err) // no fallback: another version would be tested
	}
	if err != nil {
		return nil, noPostgresError(opts.URLEnv)
	}
	pickPort := opts.pickPort
	if pickPort == nil {
		pickPort = freePort
	}
	return startCluster(ctx, binDir, pickPort)
}

// URL returns the admin URL of the server: for a private cluster
// postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable (superuser,
// trust authentication), for an existing server the URL its variable held.
func (s *Server) URL() string { return s.url }

func useExisting(ctx context.Context, env, u string) (*Server, error) {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		// The URL is not printed: it may hold a password.
		return nil, fmt.Errorf("connect to $%s: %w", env, err)
	}
	if err := conn.Close(ctx); err != nil {
		return nil, fmt.Errorf("connect to $%s: %w", env, err)
	}
	return &Server{url: u, created: map[string]bool{}}, nil
}

func startCluster(ctx context.Context, binDir string, pickPort func() (int, error)) (_ *Server, err error) {
	cred, err := clusterCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	sockDir := filepath.Join(dir, "sock")
	if err := os.Mkdir(sockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if cred != nil {
		for _, d := range []string{dir, sockDir} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("chown cluster dir: %w", err)
			}
		}
	}
	dataDir := filepath.Join(dir, "data")

	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.Env = childEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		if cred != nil && errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w (the postgres user must be able to read and execute %s and every folder above it)", err, binDir)
		}
		return nil, fmt.Errorf("run initdb: %w\n%s", err, bytes.TrimSpace(out))
	}

	s := &Server{dir: dir, binDir: binDir, created: map[string]bool{}}
	for attempt := 1; ; attempt++ {
		var port int
		if port, err = pickPort(); err != nil {
			return nil, err
		}
		if err = s.launch(ctx, binDir, dataDir, sockDir, port, cred); err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == portAttempts || ctx.Err() != nil {
			return nil, err
		}
	}
}

// errPortTaken marks a startup that failed because another process bound the
// port between our probe and the postmaster's bind.
var errPortTaken = errors.New("port taken")

func (s *Server) launch(ctx context.Context, binDir, dataDir, sockDir string, port int, cred *syscall.Credential) error {
	logPath := filepath.Join(s.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create postgres log: %w", err)
	}
	cmd := exec.Command(filepath.Join(binDir, "postgres"),
		"-D", dataDir,
		"-p", strconv.Itoa(port),
		"-k", sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: if the test binary dies, the postmaster quits (SIGQUIT) and
	// takes its backends with it instead of lingering.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() // the exit status is in cmd.ProcessState
		close(exited)
	}()

	s.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := waitReady(ctx, s.url, dataDir, exited); err != nil {
		stop(cmd.Process, exited, syscall.SIGQUIT) // immediate shutdown: nothing to keep
		logFile.Close()
		tail := logTail(logPath)
		if !errors.Is(err, errPortTaken) && strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return fmt.Errorf("start postgres: %w\n%s", err, tail)
	}
	s.cmd, s.exited, s.log = cmd, exited, logFile
	return nil
}

// stop signals the postmaster and waits for it to exit, killing it after
// shutdownTimeout; it reports whether the postmaster exited by itself.
func stop(p *os.Process, exited <-chan struct{}, sig os.Signal) bool {
	p.Signal(sig) // fails only if it has exited already
	grace := time.NewTimer(shutdownTimeout)
	defer grace.Stop()
	select {
	case <-exited:
		return true
	case <-grace.C:
		p.Kill()
		<-exited
		return false
	}
}

// waitReady connects until the cluster in dataDir answers, the postmaster
// exits, or the startup deadline passes.
func waitReady(ctx context.Context, u, dataDir string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	// A dead postmaster ends the wait at once, even mid-connect (to whatever
	// else holds the port).
	go func() {
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return fmt.Errorf("parse url: %w", err)
	}
	cfg.ConnectTimeout = time.Second
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			// Another cluster may have taken the port before ours bound it
			// (ours then exits), and would answer just the same.
			var dir string
			err = conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir)
			err = errors.Join(err, conn.Close(ctx))
			if err == nil && filepath.Clean(dir) != filepath.Clean(dataDir) {
				return fmt.Errorf("%w: another server answers on %s:%d", errPortTaken, cfg.Host, cfg.Port)
			}
			if err == nil {
				return nil
			}
		}
		retry.Reset(50 * time.Millisecond)
		select {
		case <-retry.C:
			continue
		case <-ctx.Done():
		}
		select {
		case <-exited:
			return errors.New("postgres exited during startup")
		default:
			return fmt.Errorf("wait for postgres: %w (last error: %w)", ctx.Err(), err)
		}
	}
}

// clusterCredential returns who runs initdb and postgres: nil (this process's
// user) unless we are root, which both refuse; then the postgres system user.
func clusterCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("look up user postgres: %w (initdb and postgres refuse to run as root: "+
			"create a postgres system user, run the tests as a non-root user, or point the URL variable at a server)", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// childEnv is this process's environment without the libpq variables that
// could steer initdb or postgres elsewhere, in the C locale so the log reads
// the same everywhere (we match on it).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last lines of the postgres log, for startup errors.
func logTail(path string) string {
	const maxBytes = 4 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no postgres log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		f.Seek(fi.Size()-maxBytes, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "postgres log (tail):\n" + strings.Join(lines, "\n")
}

// CreateDatabase creates an empty database whose name is derived from prefix
// (lowercased, reduced to [a-z0-9_], made unique with a counter and a random
// suffix) and returns its URL. The database belongs to this Server: drop it
// with [Server.DropDatabase], or leave it to [Server.Close].
func (s *Server) CreateDatabase(ctx context.Context, prefix string) (string, error) {
	_, u, err := s.createDatabase(ctx, prefix)
	return u, err
}

func (s *Server) createDatabase(ctx context.Context, prefix string) (name, dbURL string, err error) {
	if err := s.begin(); err != nil {
		return "", "", fmt.Errorf("create database: %w", err)
	}
	defer s.ops.Done()
	name = databaseName(prefix, s.seq.Add(1))
	dbURL, err = withDatabase(s.url, name)
	if err != nil {
		return "", "", fmt.Errorf("create database: %w", err)
	}
	// Recorded first: even a CREATE that reports failure (a cancelled
	// context, a lost connection) may have happened, and Close drops with
	// IF EXISTS.
	s.mu.Lock()
	s.created[name] = true
	s.mu.Unlock()
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, dbURL, nil
}

// DropDatabase drops a database that this Server created, terminating its
// connections. name is the database in the URL that [Server.CreateDatabase]
// returned. Dropping it again is a no-op; a name this Server did not create
// is refused, so a typo cannot drop someone's database on a shared server.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	if err := s.begin(); err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	defer s.ops.Done()
	s.mu.Lock()
	exists, ok := s.created[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("drop database %q: not created by this server", name)
	}
	if !exists {
		return nil
	}
	if err := s.dropDatabase(ctx, name); err != nil {
		return err
	}
	s.mu.Lock()
	s.created[name] = false
	s.mu.Unlock()
	return nil
}

func (s *Server) dropDatabase(ctx context.Context, name string) error {
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// begin registers a database operation, or refuses it once Close has begun.
func (s *Server) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	s.ops.Add(1)
	return nil
}

// exec runs one statement on its own admin connection: CREATE and DROP
// DATABASE cannot run in a transaction, a connection costs little next to
// them, and no pool outlives the call.
func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, sql)
	return errors.Join(err, conn.Close(ctx))
}

// Close releases the server: for a private cluster it stops postgres (fast
// shutdown, then SIGKILL after a grace period) and removes its directory; for
// an existing server it drops the databases this Server created. It waits for
// database operations in flight. Close is idempotent: later calls return the
// first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ops.Wait()

	if s.dir == "" {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		s.mu.Lock()
		var names []string
		for name, exists := range s.created {
			if exists {
				names = append(names, name)
			}
		}
		s.mu.Unlock()
		var errs []error
		for _, name := range names {
			errs = append(errs, s.dropDatabase(ctx, name))
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("close server: %w", err)
		}
		return nil
	}

	var errs []error
	if !stop(s.cmd.Process, s.exited, syscall.SIGINT) { // fast shutdown
		errs = append(errs, fmt.Errorf("stop postgres: no exit %v after SIGINT, killed", shutdownTimeout))
	}
	errs = append(errs, s.log.Close())
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove cluster dir: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close server: %w", err)
	}
	return nil
}

// databaseName makes a valid, unquoted-safe identifier of at most 63 bytes
// from prefix, unique per seq within a Server and, thanks to the random part,
// across processes sharing one server.
func databaseName(prefix string, seq uint64) string {
	var b strings.Builder
	underscore := true // drops leading and repeated underscores
	for _, r := range strings.ToLower(prefix) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	base := strings.TrimRight(b.String(), "_")
	if base == "" || base[0] >= '0' && base[0] <= '9' {
		base = "db_" + base
	}
	random := make([]byte, 4)
	rand.Read(random)
	suffix := "_" + strconv.FormatUint(seq, 10) + "_" + hex.EncodeToString(random)
	if len(base)+len(suffix) > maxIdentLen {
		base = strings.TrimRight(base[:maxIdentLen-len(suffix)], "_")
	}
	return strings.TrimRight(base, "_") + suffix
}

// withDatabase returns admin with its database replaced by name. name is
// [a-z0-9_] only, so it needs no escaping in either URL form.
func withDatabase(admin, name string) (string, error) {
	if !strings.HasPrefix(admin, "postgres://") && !strings.HasPrefix(admin, "postgresql://") {
		return admin + " dbname=" + name, nil // keyword/value form: the last value wins
	}
	u, err := url.Parse(admin)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // url.Error quotes the URL, password included
		}
		return "", fmt.Errorf("parse server url: %w", err)
	}
	u.Path, u.RawPath = "/"+name, ""
	return u.String(), nil
}
