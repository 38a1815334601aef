package sqlite

import (
	"errors"
	"strings"
)

// Busy reports whether err is SQLite's busy or locked error (extended
// codes included): the database's write lock was not had within
// busy_timeout.
func Busy(err error) bool {
	c, ok := code(err)
	return ok && (c&0xff == 5 || c&0xff == 6)
}

// UndefinedTable reports whether err is SQLite's "no such table", which
// has no result code of its own (it is SQLITE_ERROR): the message is all
// that tells it.
func UndefinedTable(err error) bool {
	_, ok := code(err)
	return ok && strings.Contains(err.Error(), "no such table")
}

// code returns the result code of a SQLite error (modernc.org/sqlite's
// *Error, matched by its method so that this package needs no driver).
func code(err error) (int, bool) {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		return coded.Code(), true
	}
	return 0, false
}

// Answered reports whether err is an error SQLite itself returned (it
// carries a result code), as opposed to one of the driver or of a context.
func Answered(err error) bool {
	_, ok := code(err)
	return ok
}
