package flagstest_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Parallel tests set different stages for the same migration; each sees
// only its own.
func TestStagesArePerTest(t *testing.T) {
	t.Parallel()
	for _, s := range flags.Stages() {
		for i := range 3 {
			t.Run(fmt.Sprintf("%s/%d", s, i), func(t *testing.T) {
				t.Parallel()
				f, p := flagstest.Flag(t, "orders_move_amount", s)
				for range 50 {
					require.Equal(t, s, f.Stage(t.Context()))
				}
				next, ok := s.Next()
				if !ok {
					next = flags.Off
				}
				p.Set("orders_move_amount", next)
				assert.Equal(t, next, f.Stage(t.Context()))
				assert.Equal(t, 51, p.Evaluations("orders_move_amount"))
			})
		}
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	ev, p := flagstest.Evaluator(t, map[string]flags.Stage{"a": flags.Live, "b": flags.Shadow})
	p.Fail("a", nil)
	p.SetRaw("b", "bogus")
	a, err := ev.Stage(t.Context(), "a")
	require.NoError(t, err)
	b, err := ev.Stage(t.Context(), "b")
	require.NoError(t, err)
	assert.Equal(t, flags.Off, a)
	assert.Equal(t, flags.Off, b)
	st := ev.Stats()
	assert.Equal(t, uint64(1), st.Fallbacks[flags.ProviderError])
	assert.Equal(t, uint64(1), st.Fallbacks[flags.UnknownVariant])
	// A stage set after a failure clears it.
	p.Set("a", flags.Rampdown)
	a, err = ev.Stage(t.Context(), "a")
	require.NoError(t, err)
	assert.Equal(t, flags.Rampdown, a)
}
