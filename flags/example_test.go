package flags_test

import (
	"context"
	"fmt"

	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

func ExampleParseStage() {
	s, err := flags.ParseStage("Shadow")
	fmt.Println(s, err, s < flags.Live)
	_, err = flags.ParseStage("halfway")
	fmt.Println(err)
	// Output:
	// shadow <nil> true
	// parse stage "halfway": unknown stage (want one of off, dualwrite, shadow, live, rampdown, complete)
}

// A flag service that goes down leaves every instance at the last stage it
// saw, never at a stage it did not.
func ExampleFlag_Evaluate() {
	ctx := context.Background()
	provider := flagstest.NewProvider(map[string]flags.Stage{"users_split_name": flags.Live})
	api := isolated.NewAPI()
	defer func() { _ = api.Shutdown(ctx) }()
	_ = api.SetProviderAndWait(ctx, provider)
	ev, _ := flags.NewEvaluator(api.NewClient())
	flag, _ := ev.Flag("users_split_name")

	fmt.Println(flag.Stage(ctx))
	provider.Fail("users_split_name", nil)
	s, fb := flag.Evaluate(ctx)
	fmt.Println(s, fb.Reason)
	fmt.Println(ev.Stats().TotalFallbacks(), "fallback")
	// Output:
	// live
	// live provider_error
	// 1 fallback
}
