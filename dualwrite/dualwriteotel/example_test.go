package dualwriteotel_test

import (
	"context"
	"fmt"

	"github.com/open-feature/go-sdk/openfeature/isolated"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwriteotel"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

// One observer serves the flags and the adapters: here two reads at stage
// shadow, one whose new path disagrees, counted by result.
func ExampleNew() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader() // a service would export: OTLP, Prometheus, …
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = provider.Shutdown(ctx) }()
	obs, err := dualwriteotel.New(provider.Meter("schemashift"))
	if err != nil {
		panic(err)
	}

	api := isolated.NewAPI()
	defer func() { _ = api.Shutdown(ctx) }()
	_ = api.SetProviderAndWait(ctx, flagstest.NewProvider(map[string]flags.Stage{"users_split_name": flags.Shadow}))
	ev, _ := flags.NewEvaluator(api.NewClient(), flags.WithObserver(obs))
	flag, _ := ev.Flag("users_split_name")
	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (string, error) { return "Ada Lovelace", nil },
		func(_ context.Context, id int) (string, error) {
			if id == 2 {
				return "Ada King", nil
			}
			return "Ada Lovelace", nil
		},
		dualwrite.WithObserver(obs))
	if err != nil {
		panic(err)
	}
	for id := range 2 {
		_, _ = r.Read(ctx, id+1)
		r.Wait()
	}
	_ = r.Close()

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "schemashift.dualwrite.comparisons" {
				for _, dp := range sum.DataPoints {
					result, _ := dp.Attributes.Value("result")
					fmt.Printf("%s{result=%s} %d\n", m.Name, result.AsString(), dp.Value)
				}
			}
		}
	}
	// Unordered output:
	// schemashift.dualwrite.comparisons{result=match} 1
	// schemashift.dualwrite.comparisons{result=mismatch} 1
}
