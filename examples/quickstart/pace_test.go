//go:build !race

package main

// sqlitePace is 1 without the race detector: SQLite runs at full speed.
const sqlitePace = 1
