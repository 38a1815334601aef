package dualwriteotel_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwriteotel"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestObserverRecordsMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.WithoutCancel(t.Context())) })
	obs, err := dualwriteotel.New(provider.Meter("schemashift"))
	require.NoError(t, err)

	ev, p := flagstest.Evaluator(t, map[string]flags.Stage{"m": flags.Live}, flags.WithObserver(obs))
	flag, err := ev.Flag("m")
	require.NoError(t, err)
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (int, error) { return 1, nil },
		func(context.Context, int) (int, error) { return 2, nil },
		dualwrite.WithObserver(obs))
	require.NoError(t, err)
	w, err := dualwrite.NewWriter(flag,
		func(context.Context, int) error { return errors.New("old store down") },
		func(context.Context, int) error { return nil },
		dualwrite.WithObserver(obs))
	require.NoError(t, err)

	_, err = r.Read(t.Context(), 0)
	require.NoError(t, err)
	r.Wait()
	require.Error(t, w.Write(t.Context(), 0))
	p.SetRaw("m", "nonsense")
	_, err = r.Read(t.Context(), 0)
	require.NoError(t, err)
	r.Wait() // Close would cancel a shadow read still in flight
	require.NoError(t, r.Close())

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	sums := map[string]map[string]int64{}
	var histCount uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				sums[m.Name] = map[string]int64{}
				for _, dp := range data.DataPoints {
					sums[m.Name][key(dp.Attributes)] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					histCount += dp.Count
				}
			}
		}
	}
	calls := sums["schemashift.dualwrite.calls"]
	assert.Equal(t, int64(2), calls["migration=m,op=read,origin=new,outcome=ok,role=authoritative,stage=live"])
	assert.Equal(t, int64(2), calls["migration=m,op=read,origin=old,outcome=ok,role=shadow,stage=live"],
		"the read after the fallback is at live (the last good stage) and shadows too")
	assert.Equal(t, int64(1), calls["migration=m,op=write,origin=new,outcome=ok,role=authoritative,stage=live"])
	assert.Equal(t, int64(1), calls["migration=m,op=write,origin=old,outcome=error,role=secondary,stage=live"])
	assert.Equal(t, int64(2), sums["schemashift.dualwrite.comparisons"]["migration=m,result=mismatch,stage=live"])
	assert.Equal(t, int64(1), sums["schemashift.flags.fallbacks"]["migration=m,reason=unknown_variant,stage=live"])
	assert.Equal(t, uint64(6), histCount, "every call's latency is recorded")
}

func key(set attribute.Set) string {
	var s string
	for i, kv := range set.ToSlice() {
		if i > 0 {
			s += ","
		}
		s += string(kv.Key) + "=" + kv.Value.String()
	}
	return s
}

// A failed shadow read is counted under its kind of failure, never as a
// match or a mismatch.
func TestObserverCountsFailuresApart(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.WithoutCancel(t.Context())) })
	obs, err := dualwriteotel.New(provider.Meter("schemashift"))
	require.NoError(t, err)
	flag, _ := flagstest.Flag(t, "m", flags.Shadow)
	var calls int
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (int, error) { return 1, nil },
		func(context.Context, int) (int, error) {
			calls++ // shadow reads run one at a time here
			if calls == 2 {
				panic("new path bug")
			}
			if calls%2 == 1 {
				return 0, errors.New("new store down")
			}
			return 1, nil
		},
		dualwrite.WithObserver(obs))
	require.NoError(t, err)
	for range 4 {
		_, err = r.Read(t.Context(), 0)
		require.NoError(t, err)
		r.Wait()
	}
	require.NoError(t, r.Close())
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if data, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "schemashift.dualwrite.comparisons" {
				for _, dp := range data.DataPoints {
					got[key(dp.Attributes)] += dp.Value
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"migration=m,result=error,stage=shadow": 2,
		"migration=m,result=panic,stage=shadow": 1,
		"migration=m,result=match,stage=shadow": 1,
	}, got)
}
