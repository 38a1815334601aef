// Package ident validates and quotes SQL identifiers. Every table and column
// name schemashift puts into SQL passes through here: values are always bind
// parameters, and names are quoted, never spliced as given.
package ident

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// MaxLen is PostgreSQL's identifier length limit (NAMEDATALEN-1), in bytes.
const MaxLen = 63

// ErrInvalid is wrapped by every identifier validation error.
var ErrInvalid = errors.New("invalid identifier")

// Check returns an error wrapping [ErrInvalid] when name cannot be a
// PostgreSQL identifier: empty, longer than 63 bytes (Postgres would
// silently truncate it), not UTF-8, or holding a NUL byte.
func Check(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalid)
	case len(name) > MaxLen:
		return fmt.Errorf("%w: %q is %d bytes, over the limit of %d", ErrInvalid, trunc(name), len(name), MaxLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not UTF-8", ErrInvalid, trunc(name))
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("%w: %q holds a NUL byte", ErrInvalid, trunc(name))
	}
	return nil
}

// Quote validates name and returns it quoted.
func Quote(name string) (string, error) {
	if err := Check(name); err != nil {
		return "", err
	}
	return pgx.Identifier{name}.Sanitize(), nil
}

// Table is a possibly schema-qualified table name.
type Table struct {
	Schema string // empty: the search path decides
	Name   string
}

// ParseTable reads "name" or "schema.name". A dot always separates; names
// that contain dots are given as a Table value instead.
func ParseTable(s string) (Table, error) {
	schema, name, found := strings.Cut(s, ".")
	if !found {
		return Table{Name: s}, Table{Name: s}.Check()
	}
	t := Table{Schema: schema, Name: name}
	if schema == "" {
		return t, fmt.Errorf("schema: %w: empty name", ErrInvalid)
	}
	return t, t.Check()
}

// Check validates both parts.
func (t Table) Check() error {
	if t.Schema != "" {
		if err := Check(t.Schema); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
	}
	if err := Check(t.Name); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	return nil
}

// Quoted returns the table's name quoted for SQL.
func (t Table) Quoted() string {
	if t.Schema == "" {
		return pgx.Identifier{t.Name}.Sanitize()
	}
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

func (t Table) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// Derive names an object after base, with suffix ("email" + "_not_null"):
// base + suffix when that fits in [MaxLen] bytes, else base cut on a
// character boundary, then "_", 8 hex digits of base's SHA-256 and suffix,
// so that two long bases sharing a prefix still name two objects.
func Derive(base, suffix string) string {
	if len(base)+len(suffix) <= MaxLen {
		return base + suffix
	}
	sum := sha256.Sum256([]byte(base))
	tail := "_" + hex.EncodeToString(sum[:4]) + suffix
	cut := max(0, MaxLen-len(tail))
	for cut > 0 && !utf8.RuneStart(base[cut]) {
		cut--
	}
	return base[:cut] + tail
}

// QuoteAll validates and quotes each name.
func QuoteAll(names []string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		q, err := Quote(n)
		if err != nil {
			return nil, err
		}
		out[i] = q
	}
	return out, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
