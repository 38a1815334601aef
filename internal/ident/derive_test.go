package ident_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/schemashift/schemashift/internal/ident"
)

func TestDerive(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "email_not_null", ident.Derive("email", "_not_null"))
	long1 := strings.Repeat("д", 27) + "a" // 55 bytes
	long2 := strings.Repeat("д", 27) + "b"
	for _, base := range []string{long1, long2, strings.Repeat("名", 21), strings.Repeat("🙂", 15), strings.Repeat("a", 63)} {
		got := ident.Derive(base, "_not_null")
		assert.LessOrEqual(t, len(got), ident.MaxLen, got)
		assert.True(t, utf8.ValidString(got), "%q", got)
		assert.True(t, strings.HasSuffix(got, "_not_null"), got)
		assert.NoError(t, ident.Check(got))
	}
	assert.NotEqual(t, ident.Derive(long1, "_not_null"), ident.Derive(long2, "_not_null"), "same prefix, two names")
}
