package flags_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/flags"
)

func TestParseStage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    flags.Stage
		wantErr bool
	}{
		{"off", flags.Off, false},
		{"dualwrite", flags.DualWrite, false},
		{"shadow", flags.Shadow, false},
		{"live", flags.Live, false},
		{"rampdown", flags.Rampdown, false},
		{"complete", flags.Complete, false},
		{"DualWrite", flags.DualWrite, false},
		{"  LIVE\n", flags.Live, false},
		{"", flags.Off, true},
		{"dual_write", flags.Off, true},
		{"on", flags.Off, true},
		{"complete!", flags.Off, true},
		{"off\x00", flags.Off, true},
		{"'; DROP TABLE users; --", flags.Off, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := flags.ParseStage(tt.in)
			if tt.wantErr {
				require.ErrorIs(t, err, flags.ErrUnknownStage)
				assert.Contains(t, err.Error(), "want one of off, dualwrite, shadow, live, rampdown, complete")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestStageOrderAndNames(t *testing.T) {
	t.Parallel()
	all := flags.Stages()
	require.Len(t, all, 6)
	names := []string{"off", "dualwrite", "shadow", "live", "rampdown", "complete"}
	for i, s := range all {
		assert.Equal(t, names[i], s.String())
		assert.True(t, s.Valid())
		if i > 0 {
			assert.Less(t, all[i-1], s, "stages must be ordered")
			prev, ok := s.Previous()
			assert.True(t, ok)
			assert.Equal(t, all[i-1], prev)
		}
		if i < len(all)-1 {
			next, ok := s.Next()
			assert.True(t, ok)
			assert.Equal(t, all[i+1], next)
		}
	}
	_, ok := flags.Complete.Next()
	assert.False(t, ok)
	_, ok = flags.Off.Previous()
	assert.False(t, ok)
	assert.Equal(t, flags.Off, flags.Stage(0), "the zero stage is off")
	assert.False(t, flags.Stage(6).Valid())
	assert.Equal(t, "Stage(6)", flags.Stage(6).String())
}

func TestStageTextMarshalling(t *testing.T) {
	t.Parallel()
	type doc struct {
		Stage flags.Stage `json:"stage"`
	}
	for _, s := range flags.Stages() {
		b, err := json.Marshal(doc{s})
		require.NoError(t, err)
		assert.JSONEq(t, `{"stage":"`+s.String()+`"}`, string(b))
		var back doc
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, s, back.Stage)
	}
	var d doc
	err := json.Unmarshal([]byte(`{"stage":"sideways"}`), &d)
	require.Error(t, err)
	assert.True(t, errors.Is(err, flags.ErrUnknownStage), "got %v", err)
	_, err = json.Marshal(doc{flags.Stage(9)})
	require.Error(t, err)
}

func TestParseStageDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := flags.ParseStage("rampdown"); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

func FuzzParseStage(f *testing.F) {
	for _, s := range []string{"off", "dualwrite", "Shadow", " live ", "", "\xff", "rampdown\x00", "COMPLETE"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := flags.ParseStage(in)
		if err != nil {
			if !errors.Is(err, flags.ErrUnknownStage) {
				t.Fatalf("error %v does not wrap ErrUnknownStage", err)
			}
			if s != flags.Off {
				t.Fatalf("failed parse returned %v, want off", s)
			}
			return
		}
		if !s.Valid() {
			t.Fatalf("parsed %q to invalid %d", in, s)
		}
		// Round trip: the canonical name parses back to the same stage.
		text, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back flags.Stage
		if err := back.UnmarshalText(text); err != nil || back != s {
			t.Fatalf("round trip of %q: %v, %v", text, back, err)
		}
	})
}
