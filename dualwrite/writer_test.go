package dualwrite_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwritetest"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

// writeOrder is the stage table's write column.
var writeOrder = map[flags.Stage][]string{
	flags.Off:       {"old"},
	flags.DualWrite: {"old", "new"},
	flags.Shadow:    {"old", "new"},
	flags.Live:      {"new", "old"},
	flags.Rampdown:  {"new", "old"},
	flags.Complete:  {"new"},
}

func TestWriteFollowsStageTable(t *testing.T) {
	t.Parallel()
	for _, stage := range flags.Stages() {
		t.Run(stage.String(), func(t *testing.T) {
			t.Parallel()
			flag, _ := flagstest.Flag(t, migration, stage)
			rec := &dualwritetest.Recorder{}
			ran := &origins{}
			write := func(name string) dualwrite.WriteFunc[user] {
				return func(_ context.Context, u user) error {
					ran.record(name)
					return nil
				}
			}
			w, err := dualwrite.NewWriter(flag, write("old"), write("new"), dualwrite.WithObserver(rec))
			require.NoError(t, err)
			require.NoError(t, w.Write(t.Context(), user{ID: 1}))
			assert.Equal(t, writeOrder[stage], ran.list())
			calls := rec.Calls()
			require.Len(t, calls, len(writeOrder[stage]))
			assert.Equal(t, dualwrite.Authoritative, calls[0].Role)
			assert.Equal(t, writeOrder[stage][0], calls[0].Origin.String())
			if len(calls) == 2 {
				assert.Equal(t, dualwrite.Secondary, calls[1].Role)
				assert.Equal(t, writeOrder[stage][1], calls[1].Origin.String())
			}
			for _, c := range calls {
				assert.Equal(t, dualwrite.Write, c.Op)
				assert.Equal(t, stage, c.Stage)
			}
		})
	}
}

func TestWriteFailures(t *testing.T) {
	t.Parallel()
	boom := errors.New("unique violation")
	down := errors.New("store unreachable")
	for _, stage := range []flags.Stage{flags.DualWrite, flags.Shadow, flags.Live, flags.Rampdown} {
		authority := writeOrder[stage][0]
		t.Run(stage.String()+"/authoritative fails: nothing else is written", func(t *testing.T) {
			t.Parallel()
			flag, _ := flagstest.Flag(t, migration, stage)
			ran := &origins{}
			fn := func(name string) dualwrite.WriteFunc[int] {
				return func(context.Context, int) error {
					ran.record(name)
					if name == authority {
						return boom
					}
					return nil
				}
			}
			w, err := dualwrite.NewWriter(flag, fn("old"), fn("new"))
			require.NoError(t, err)
			err = w.Write(t.Context(), 1)
			assert.Same(t, boom, err, "the authoritative error is returned as is")
			assert.Equal(t, []string{authority}, ran.list())
		})
		t.Run(stage.String()+"/secondary fails: call fails", func(t *testing.T) {
			t.Parallel()
			flag, _ := flagstest.Flag(t, migration, stage)
			fn := func(name string) dualwrite.WriteFunc[int] {
				return func(context.Context, int) error {
					if name != authority {
						return down
					}
					return nil
				}
			}
			w, err := dualwrite.NewWriter(flag, fn("old"), fn("new"))
			require.NoError(t, err)
			err = w.Write(t.Context(), 1)
			require.ErrorIs(t, err, dualwrite.ErrSecondaryWrite)
			require.ErrorIs(t, err, down)
			var swe *dualwrite.SecondaryWriteError
			require.ErrorAs(t, err, &swe)
			assert.Equal(t, writeOrder[stage][1], swe.Origin.String())
			assert.Equal(t, stage, swe.Stage)
		})
		t.Run(stage.String()+"/secondary fails: recorded for repair", func(t *testing.T) {
			t.Parallel()
			flag, _ := flagstest.Flag(t, migration, stage)
			var mu sync.Mutex
			var repairs []dualwrite.Repair
			queue := dualwrite.RepairQueueFunc(func(_ context.Context, r dualwrite.Repair) error {
				mu.Lock()
				defer mu.Unlock()
				repairs = append(repairs, r)
				return nil
			})
			fn := func(name string) dualwrite.WriteFunc[user] {
				return func(context.Context, user) error {
					if name != authority {
						return down
					}
					return nil
				}
			}
			w, err := dualwrite.NewWriter(flag, fn("old"), fn("new"), dualwrite.WithRepairQueue(queue))
			require.NoError(t, err)
			require.NoError(t, w.Write(t.Context(), user{ID: 9}))
			require.Len(t, repairs, 1)
			assert.Equal(t, user{ID: 9}, repairs[0].Input)
			assert.Equal(t, writeOrder[stage][1], repairs[0].Origin.String())
			assert.Same(t, down, repairs[0].Err)
			assert.Equal(t, migration, repairs[0].Migration)
			assert.False(t, repairs[0].At.IsZero())
		})
		t.Run(stage.String()+"/secondary and repair fail: call fails with both", func(t *testing.T) {
			t.Parallel()
			flag, _ := flagstest.Flag(t, migration, stage)
			queueDown := errors.New("repair table locked")
			fn := func(name string) dualwrite.WriteFunc[int] {
				return func(context.Context, int) error {
					if name != authority {
						return down
					}
					return nil
				}
			}
			w, err := dualwrite.NewWriter(flag, fn("old"), fn("new"),
				dualwrite.WithRepairQueue(dualwrite.RepairQueueFunc(func(context.Context, dualwrite.Repair) error { return queueDown })))
			require.NoError(t, err)
			err = w.Write(t.Context(), 1)
			assert.ErrorIs(t, err, down)
			assert.ErrorIs(t, err, queueDown)
			assert.ErrorIs(t, err, dualwrite.ErrSecondaryWrite)
		})
	}
}

func TestNewWriterRejectsBadOptions(t *testing.T) {
	t.Parallel()
	flag, _ := flagstest.Flag(t, migration, flags.Off)
	write := func(context.Context, int) error { return nil }
	_, err := dualwrite.NewWriter(flag, write, write, dualwrite.WithShadowTimeout(1))
	assert.ErrorContains(t, err, "WithShadowTimeout does not apply to a Writer")
	_, err = dualwrite.NewWriter(flag, write, write, dualwrite.WithRepairQueue(nil))
	assert.Error(t, err)
	_, err = dualwrite.NewWriter(flag, nil, write)
	assert.Error(t, err)
}
