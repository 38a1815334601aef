package pgtest

import (
	"context"
	"testing"
)

// WithSearch makes Start look for the server binaries only in path (a
// $PATH-style list, also searched for pg_config) and libGlob.
func WithSearch(o Options, path, libGlob string) Options {
	o.search = &binSearch{path: path, libGlob: libGlob}
	return o
}

func FindBinDir(ctx context.Context, binDir, path, libGlob string) (string, error) {
	return findBinDir(ctx, binSearch{binDir: binDir, path: path, libGlob: libGlob})
}

// DefaultBinDir is the directory Start takes the binaries from by default:
// $SCHEMASHIFT_TEST_PG_BIN when set, else the machine's.
func DefaultBinDir(ctx context.Context) (string, error) { return findBinDir(ctx, defaultSearch()) }

// BinDir is where the private cluster's binaries came from, empty for an
// existing server.
func BinDir(s *Server) string { return s.binDir }

func SharedServer(t testing.TB) *Server { return sharedServer(t) }

// Dir is the private cluster's directory, empty for an existing server.
func Dir(s *Server) string { return s.dir }

// PID is the postmaster's process id, 0 for an existing server.
func PID(s *Server) int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

var DatabaseName = databaseName

// WithPorts makes Start try ports first, then free ones.
func WithPorts(o Options, ports ...int) Options {
	o.pickPort = func() (int, error) {
		if len(ports) == 0 {
			return freePort()
		}
		p := ports[0]
		ports = ports[1:]
		return p, nil
	}
	return o
}
