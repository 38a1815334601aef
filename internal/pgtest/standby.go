package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StandbyOptions configures [Server.StartStandby]. The zero value is a
// standby named "pgtest_standby" replying at PostgreSQL's default
// interval.
type StandbyOptions struct {
	// Name is the standby's application_name, as the primary's
	// pg_stat_replication shows it.
	Name string
	// StatusInterval is the standby's wal_receiver_status_interval: how
	// often at least it replies to its primary (0: PostgreSQL's default,
	// 10s).
	StatusInterval time.Duration
}

// Standby is a streaming hot standby of a private cluster, in a directory
// of its own on a port of its own, for tests of replication. It streams
// through a physical replication slot of its primary, so that the primary
// keeps the log it has not received. A Standby is safe for concurrent use
// and must be closed with [Standby.Close].
type Standby struct {
	srv     *Server // the standby's own cluster: its process and directory
	primary *Server
	slot    string

	mu     sync.Mutex
	frozen int // the pid of a WAL receiver stopped by FreezeReceiver; 0: none
}

// StartStandby starts a streaming standby of s, which must be a private
// cluster (one [Start] started, not a server named by a URL: the standby
// is made from its files). The copy is a base backup taken through the
// backup functions (pg_backup_start, or pg_start_backup before
// PostgreSQL 15) and a file copy, rather than pg_basebackup, which not
// every installation of the server binaries has. ctx bounds the startup.
func (s *Server) StartStandby(ctx context.Context, opts StandbyOptions) (_ *Standby, err error) {
	if s.dir == "" {
		return nil, errors.New("start standby: the server is not a private cluster")
	}
	if opts.Name == "" {
		opts.Name = "pgtest_standby"
	}
	if err := s.begin(); err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	defer s.ops.Done()
	cred, err := clusterCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-standby-")
	if err != nil {
		return nil, fmt.Errorf("create standby dir: %w", err)
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
	dataDir := filepath.Join(dir, "data")
	random := make([]byte, 4)
	rand.Read(random)
	slot := "pgtest_standby_" + hex.EncodeToString(random)
	primaryPort, err := s.port()
	if err != nil {
		return nil, err
	}
	if err := s.baseBackup(ctx, slot, filepath.Join(s.dir, "data"), dataDir); err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	conf := fmt.Sprintf("\nprimary_conninfo = %s\nprimary_slot_name = %s\nhot_standby = on\n",
		confString(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", primaryPort, conninfoValue(opts.Name))),
		confString(slot))
	if opts.StatusInterval > 0 {
		conf += fmt.Sprintf("wal_receiver_status_interval = '%dms'\n", opts.StatusInterval.Milliseconds())
	}
	if err := appendFile(filepath.Join(dataDir, "postgresql.auto.conf"), conf); err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "standby.signal"), nil, 0o600); err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	if cred != nil {
		if err := chownTree(dir, cred); err != nil {
			return nil, fmt.Errorf("start standby: %w", err)
		}
	}
	sb := &Server{dir: dir, binDir: s.binDir, created: map[string]bool{}}
	for attempt := 1; ; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			return nil, err
		}
		if err = sb.launch(ctx, s.binDir, dataDir, sockDir, port, cred); err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == portAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("start standby: %w", err)
		}
	}
	return &Standby{srv: sb, primary: s, slot: slot}, nil
}

// port is the private cluster's port, from its URL.
func (s *Server) port() (int, error) {
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		return 0, fmt.Errorf("parse server url: %w", err)
	}
	return int(cfg.Port), nil
}

// baseBackup copies the cluster's data directory from to to between the
// start and the stop of a backup, and writes the backup label there,
// reserving the log from the start in a new slot.
func (s *Server) baseBackup(ctx context.Context, slot, from, to string) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return fmt.Errorf("connect to primary: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return fmt.Errorf("read server version: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true)", slot); err != nil {
		return fmt.Errorf("create replication slot: %w", err)
	}
	start, stop := "SELECT pg_backup_start($1, true)", "SELECT labelfile, spcmapfile FROM pg_backup_stop(false)"
	if version < 150000 {
		start, stop = "SELECT pg_start_backup($1, true, false)", "SELECT labelfile, spcmapfile FROM pg_stop_backup(false, false)"
	}
	if _, err := conn.Exec(ctx, start, slot); err != nil {
		return fmt.Errorf("start backup: %w", err)
	}
	copyErr := copyDataDir(from, to)
	var label, spcmap string
	if err := conn.QueryRow(ctx, stop).Scan(&label, &spcmap); err != nil {
		return errors.Join(copyErr, fmt.Errorf("stop backup: %w", err))
	}
	if copyErr != nil {
		return copyErr
	}
	if err := os.WriteFile(filepath.Join(to, "backup_label"), []byte(label), 0o600); err != nil {
		return fmt.Errorf("write backup label: %w", err)
	}
	if spcmap != "" {
		if err := os.WriteFile(filepath.Join(to, "tablespace_map"), []byte(spcmap), 0o600); err != nil {
			return fmt.Errorf("write tablespace map: %w", err)
		}
	}
	return nil
}

// copyDataDir copies a running cluster's data directory, leaving out what
// a base backup leaves out: the postmaster's files, the log (the standby
// streams it), and directories whose contents are rebuilt at startup.
// Files that go while it copies are passed over: their removal is in the
// log.
func copyDataDir(from, to string) error {
	emptied := map[string]bool{"pg_wal": true, "pg_replslot": true, "pg_stat_tmp": true, "pg_dynshmem": true,
		"pg_notify": true, "pg_serial": true, "pg_snapshots": true, "pg_subtrans": true}
	skipped := map[string]bool{"postmaster.pid": true, "postmaster.opts": true, "backup_label": true, "tablespace_map": true}
	err := filepath.WalkDir(from, func(path string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if e.IsDir() {
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return err
			}
			if emptied[rel] {
				if rel == "pg_wal" {
					return os.Mkdir(filepath.Join(dst, "archive_status"), 0o700)
				}
				return filepath.SkipDir
			}
			return nil
		}
		if skipped[rel] || e.Name() == "pg_internal.init" || !e.Type().IsRegular() {
			return nil
		}
		return copyFile(path, dst)
	})
	if err != nil {
		return fmt.Errorf("copy data directory: %w", err)
	}
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	return errors.Join(err, dst.Close())
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

func chownTree(dir string, cred *syscall.Credential) error {
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	})
}

// confString is s as a string literal of a configuration file.
func confString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\n", `\n`).Replace(s) + "'"
}

// conninfoValue is s as a quoted value of a connection string.
func conninfoValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// URL returns the admin URL of the standby, as [Server.URL] does of a
// cluster: its postgres database, read-only.
func (sb *Standby) URL() string { return sb.srv.url }

// DatabaseURL returns the URL of database name on the standby: a database
// of the primary ([Server.CreateDatabase]'s name, the last part of its
// URL's path), once the standby has replayed its creation.
func (sb *Standby) DatabaseURL(name string) (string, error) { return withDatabase(sb.srv.url, name) }

// FreezeReceiver stops the standby's WAL receiver process (SIGSTOP)
// without ending it: the primary keeps its connection, which stops
// replying, as of a standby cut off by the network. [Standby.ThawReceiver]
// or [Standby.Close] resumes it.
func (sb *Standby) FreezeReceiver(ctx context.Context) error {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.frozen != 0 {
		return errors.New("freeze WAL receiver: frozen already")
	}
	conn, err := pgx.Connect(ctx, sb.srv.url)
	if err != nil {
		return fmt.Errorf("freeze WAL receiver: %w", err)
	}
	var pid int
	err = conn.QueryRow(ctx, "SELECT pid FROM pg_stat_wal_receiver").Scan(&pid)
	err = errors.Join(err, conn.Close(ctx))
	if err != nil {
		return fmt.Errorf("freeze WAL receiver: find it: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("freeze WAL receiver: %w", err)
	}
	sb.frozen = pid
	return nil
}

// ThawReceiver resumes the WAL receiver [Standby.FreezeReceiver] stopped.
func (sb *Standby) ThawReceiver() error {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.thaw()
}

func (sb *Standby) thaw() error {
	if sb.frozen == 0 {
		return nil
	}
	err := syscall.Kill(sb.frozen, syscall.SIGCONT)
	sb.frozen = 0
	if errors.Is(err, syscall.ESRCH) {
		return nil // it is gone: nothing left to resume
	}
	if err != nil {
		return fmt.Errorf("thaw WAL receiver: %w", err)
	}
	return nil
}

// Stop stops the standby's server (fast shutdown), as a standby that went
// down: its primary's connection to it ends. Its files stay until
// [Standby.Close]. Stopping it again is a no-op.
func (sb *Standby) Stop() error {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	err := sb.thaw()
	if !stop(sb.srv.cmd.Process, sb.srv.exited, syscall.SIGINT) {
		err = errors.Join(err, fmt.Errorf("stop standby: no exit %v after SIGINT, killed", shutdownTimeout))
	}
	return err
}

// Close stops the standby (when it runs), removes its files and drops its
// replication slot on the primary (unless the primary is closed).
// Close is idempotent.
func (sb *Standby) Close() error {
	err := sb.Stop()
	err = errors.Join(err, sb.srv.Close(), sb.dropSlot())
	if err != nil {
		return fmt.Errorf("close standby: %w", err)
	}
	return nil
}

// dropSlot drops the standby's slot once its primary's sender has let it
// go (a sender outlives its standby's exit by a moment).
func (sb *Standby) dropSlot() error {
	if sb.primary.begin() != nil {
		return nil // closed: the slot went with its cluster
	}
	defer sb.primary.ops.Done()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, sb.primary.url)
	if err != nil {
		return fmt.Errorf("drop replication slot: %w", err)
	}
	defer conn.Close(ctx)
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	for {
		var active bool
		err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", sb.slot).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("drop replication slot: %w", err)
		}
		if !active {
			_, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", sb.slot)
			if err != nil {
				return fmt.Errorf("drop replication slot: %w", err)
			}
			return nil
		}
		select {
		case <-retry.C:
		case <-ctx.Done():
			return fmt.Errorf("drop replication slot: still active: %w", ctx.Err())
		}
	}
}

// Cluster starts a private cluster for t alone, closed when t ends: for
// tests that need the cluster to themselves (a standby of it, its whole
// log), where [DB]'s shared server would mix in other tests. It ignores
// [SharedURLEnv] (a standby is made from the cluster's files) and fails t
// when no server binaries are found.
func Cluster(t testing.TB) *Server {
	t.Helper()
	srv, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return srv
}

// NewStandby starts a standby of srv (a [Cluster]) for t, closed when t
// ends, before srv.
func NewStandby(t testing.TB, srv *Server, opts StandbyOptions) *Standby {
	t.Helper()
	sb, err := srv.StartStandby(t.Context(), opts)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return sb
}
