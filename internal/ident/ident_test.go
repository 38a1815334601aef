package ident_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/internal/ident"
)

func TestQuote(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"users":                    `"users"`,
		"Users":                    `"Users"`,
		`we"ird`:                   `"we""ird"`,
		`x"; DROP TABLE users; --`: `"x""; DROP TABLE users; --"`,
		strings.Repeat("a", 63):    `"` + strings.Repeat("a", 63) + `"`,
	} {
		got, err := ident.Quote(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"", strings.Repeat("a", 64), "a\x00b", "\xff"} {
		_, err := ident.Quote(bad)
		assert.ErrorIs(t, err, ident.ErrInvalid, "%q", bad)
	}
}

func TestParseTable(t *testing.T) {
	t.Parallel()
	tb, err := ident.ParseTable("app.users")
	require.NoError(t, err)
	assert.Equal(t, `"app"."users"`, tb.Quoted())
	assert.Equal(t, "app.users", tb.String())
	tb, err = ident.ParseTable("users")
	require.NoError(t, err)
	assert.Equal(t, `"users"`, tb.Quoted())
	for _, bad := range []string{"", ".users", "app.", strings.Repeat("s", 64) + ".t"} {
		_, err := ident.ParseTable(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"users", `a"b`, "", "ü", "a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ident.Quote(s)
		if err != nil {
			return
		}
		// The quoted form is one identifier: it starts and ends with a quote
		// and every quote inside is doubled.
		inner := q[1 : len(q)-1]
		if q[0] != '"' || q[len(q)-1] != '"' || strings.ReplaceAll(inner, `""`, "") != strings.ReplaceAll(s, `"`, "") {
			t.Fatalf("Quote(%q) = %q", s, q)
		}
	})
}
