package dualwrite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwritetest"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

type address struct {
	City  string
	Lines []string
}

type profile struct {
	Name     string
	Phone    string
	Secret   *string
	Tags     map[string]int
	Address  *address
	Contacts []address
	Seen     time.Time
	Notes    any
}

// compare runs one shadow comparison of old against new and returns it.
func compare[T any](t *testing.T, old, new T, opts ...dualwrite.Option) dualwrite.Comparison {
	t.Helper()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	rec := &dualwritetest.Recorder{}
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (T, error) { return old, nil },
		func(context.Context, int) (T, error) { return new, nil },
		append([]dualwrite.Option{dualwrite.WithObserver(rec)}, opts...)...)
	require.NoError(t, err)
	_, err = r.Read(t.Context(), 0)
	require.NoError(t, err)
	r.Wait() // Close would cancel a shadow read still in flight
	require.NoError(t, r.Close())
	cmp := rec.Comparisons()
	require.Len(t, cmp, 1)
	return cmp[0]
}

func TestDefaultComparatorFieldLevelDiff(t *testing.T) {
	t.Parallel()
	secret := "hunter2"
	otherSecret := "swordfish"
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	old := profile{
		Name: "Ada Lovelace", Phone: "555-0100", Secret: &secret,
		Tags:    map[string]int{"a": 1, "b": 2},
		Address: &address{City: "London", Lines: []string{"12 St James's Sq"}},
		Seen:    at, Notes: 3,
	}
	new := profile{
		Name: "Ada  Lovelace", Phone: "555-0199", Secret: &otherSecret,
		Tags:     map[string]int{"a": 1, "c": 3},
		Address:  &address{City: "London", Lines: []string{"12 St James's Sq", "Flat 2"}},
		Contacts: []address{{City: "Paris"}},
		Seen:     at.In(time.FixedZone("CET", 3600)), // same instant: equal through time.Time.Equal
		Notes:    "3",
	}
	c := compare(t, old, new, dualwrite.WithSensitiveFields("Phone", "Secret"))
	assert.False(t, c.Match)
	got := map[string]dualwrite.Diff{}
	for _, d := range c.Diffs {
		got[d.Path] = d
	}
	assert.Equal(t, dualwrite.Diff{Path: "Name", Old: `"Ada Lovelace"`, New: `"Ada  Lovelace"`}, got["Name"])
	assert.Equal(t, dualwrite.Diff{Path: "Phone", Old: dualwrite.Redacted, New: dualwrite.Redacted}, got["Phone"])
	assert.Equal(t, dualwrite.Diff{Path: "Secret", Old: dualwrite.Redacted, New: dualwrite.Redacted}, got["Secret"])
	assert.Equal(t, dualwrite.Diff{Path: `Tags["b"]`, Old: "2", New: "<absent>"}, got[`Tags["b"]`])
	assert.Equal(t, dualwrite.Diff{Path: `Tags["c"]`, Old: "<absent>", New: "3"}, got[`Tags["c"]`])
	assert.Equal(t, dualwrite.Diff{Path: "Address.Lines[1]", Old: "<absent>", New: `"Flat 2"`}, got["Address.Lines[1]"])
	assert.Contains(t, got, "Contacts")
	assert.Contains(t, got, "Notes", "an int and a string are not equal")
	assert.NotContains(t, got, "Seen", "time.Time compares with its Equal method")
	assert.Len(t, c.Diffs, 8)
	for _, d := range c.Diffs {
		assert.NotContains(t, d.String(), "555-01")
		assert.NotContains(t, d.String(), "hunter2")
		assert.NotContains(t, d.String(), "swordfish")
	}
}

func TestDefaultComparatorMatches(t *testing.T) {
	t.Parallel()
	at := time.Now()
	p := profile{Name: "x", Tags: map[string]int{"k": 1}, Address: &address{City: "Oslo"}, Seen: at}
	q := profile{Name: "x", Tags: map[string]int{"k": 1}, Address: &address{City: "Oslo"}, Seen: at.UTC()}
	assert.True(t, compare(t, p, q).Match)
	assert.True(t, compare(t, []int{}, []int(nil)).Match, "empty and nil slices hold the same rows")
	assert.True(t, compare(t, (*address)(nil), (*address)(nil)).Match)
}

func TestSensitiveTagAndNestedRedaction(t *testing.T) {
	t.Parallel()
	type account struct {
		User    user
		Profile profile
	}
	c := compare(t,
		account{User: user{Email: "a@x"}, Profile: profile{Address: &address{City: "Rome"}}},
		account{User: user{Email: "b@x"}, Profile: profile{Address: &address{City: "Milan"}}},
		dualwrite.WithSensitiveFields("Profile.Address"))
	require.Len(t, c.Diffs, 2)
	for _, d := range c.Diffs {
		assert.Equal(t, dualwrite.Redacted, d.Old, d.Path)
		assert.Equal(t, dualwrite.Redacted, d.New, d.Path)
	}
	assert.Equal(t, "User.Email", c.Diffs[0].Path, "tagged `schemashift:\"sensitive\"`")
	assert.Equal(t, "Profile.Address.City", c.Diffs[1].Path)
}

func TestCustomComparatorIsRedactedToo(t *testing.T) {
	t.Parallel()
	caseInsensitive := func(old, new user) []dualwrite.Diff {
		var d []dualwrite.Diff
		if !strings.EqualFold(old.GivenName, new.GivenName) {
			d = append(d, dualwrite.Diff{Path: "GivenName", Old: old.GivenName, New: new.GivenName})
		}
		if old.Email != new.Email {
			d = append(d, dualwrite.Diff{Path: "Email", Old: old.Email, New: new.Email})
		}
		return d
	}
	c := compare(t, user{GivenName: "ADA", Email: "a@x"}, user{GivenName: "ada", Email: "a@x"},
		dualwrite.WithComparator(caseInsensitive))
	assert.True(t, c.Match)
	c = compare(t, user{GivenName: "Ada", Email: "a@x"}, user{GivenName: "Bea", Email: "b@x"},
		dualwrite.WithComparator(caseInsensitive), dualwrite.WithSensitiveFields("Email"))
	assert.Equal(t, []dualwrite.Diff{
		{Path: "GivenName", Old: "Ada", New: "Bea"},
		{Path: "Email", Old: dualwrite.Redacted, New: dualwrite.Redacted},
	}, c.Diffs)

	eq := dualwrite.EqualFunc(func(a, b int) bool { return a%10 == b%10 })
	assert.True(t, compare(t, 13, 23, dualwrite.WithComparator(eq)).Match)
	assert.Equal(t, []dualwrite.Diff{{Old: "13", New: "24"}}, compare(t, 13, 24, dualwrite.WithComparator(eq)).Diffs)
}

func TestComparatorPanicIsContained(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	rec := &dualwritetest.Recorder{}
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (int, error) { return 1, nil },
		func(context.Context, int) (int, error) { return 2, nil },
		dualwrite.WithObserver(rec),
		dualwrite.WithComparator(func(int, int) []dualwrite.Diff { panic("comparator bug") }))
	require.NoError(t, err)
	got, err := r.Read(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, 1, got)
	r.Wait() // Close would cancel a shadow read still in flight
	require.NoError(t, r.Close())
	cmp := rec.Comparisons()
	require.Len(t, cmp, 1)
	assert.False(t, cmp[0].Match)
	assert.Equal(t, dualwrite.FaultPanic, cmp[0].Fault, "a comparator that panics fails the comparison")
	shadows := rec.CallsBy(dualwrite.ShadowRole)
	require.Len(t, shadows, 2, "the read, then the failed comparison")
	assert.ErrorIs(t, shadows[1].Err, dualwrite.ErrShadowPanic)
	var pe *dualwrite.PanicError
	require.True(t, errors.As(shadows[1].Err, &pe))
	assert.Equal(t, "comparator bug", pe.Value)
	assert.NotEmpty(t, pe.Stack)
}

func TestDiffsAreBounded(t *testing.T) {
	t.Parallel()
	a, b := make([]int, 100), make([]int, 100)
	for i := range b {
		b[i] = i + 1
	}
	c := compare(t, a, b)
	require.Len(t, c.Diffs, 33)
	assert.Equal(t, "68 more differences", c.Diffs[32].Old)
}

func TestBothOriginsFailingTheSameWayMatch(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		old, new error
		match    bool
	}{
		// A row missing from both shapes: they agree.
		"no rows": {sql.ErrNoRows, fmt.Errorf("read users: %w", sql.ErrNoRows), true},
		// The same failure on both sides proves nothing about the shapes.
		"same failure": {errors.New("connection refused"), errors.New("connection refused"), false},
		"one missing":  {sql.ErrNoRows, errors.New("connection refused"), false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			flag, _ := flagstest.Flag(t, migration, flags.Live)
			rec := &dualwritetest.Recorder{}
			r, err := dualwrite.NewReader(flag,
				func(context.Context, int) (int, error) { return 0, c.old },
				func(context.Context, int) (int, error) { return 0, c.new },
				dualwrite.WithObserver(rec))
			require.NoError(t, err)
			_, err = r.Read(t.Context(), 0)
			require.ErrorIs(t, err, c.new, "the authoritative (new) error is returned")
			r.Wait() // Close would cancel a shadow read still in flight
			require.NoError(t, r.Close())
			cmp := rec.Comparisons()
			require.Len(t, cmp, 1)
			assert.Equal(t, c.match, cmp[0].Match)
			if !c.match {
				assert.Equal(t, dualwrite.FaultError, cmp[0].Fault)
			}
		})
	}
}
