//go:build race

package main

// sqlitePace stretches the SQLite run's windows under the race detector,
// which slows the SQLite engine (Go translated from C) by tens of times.
const sqlitePace = 5
