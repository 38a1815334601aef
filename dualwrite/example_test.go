package dualwrite_test

import (
	"context"
	"fmt"

	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwritetest"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
)

type person struct {
	Given, Family string
	Email         string `schemashift:"sensitive"`
}

// At stage shadow the caller gets the old shape's answer; the new shape is
// read in the background and compared field by field.
func ExampleReader() {
	ctx := context.Background()
	// An OpenFeature API of the application's own; here with a fake
	// provider (a service would use the ledger's provider, or flagd, …).
	api := isolated.NewAPI()
	defer func() { _ = api.Shutdown(ctx) }()
	_ = api.SetProviderAndWait(ctx, flagstest.NewProvider(map[string]flags.Stage{"users_split_name": flags.Shadow}))
	ev, _ := flags.NewEvaluator(api.NewClient())
	flag, _ := ev.Flag("users_split_name")
	rec := &dualwritetest.Recorder{}

	r, err := dualwrite.NewReader(flag,
		func(context.Context, int) (person, error) {
			return person{Given: "Ada", Family: "Lovelace", Email: "ada@example.com"}, nil
		},
		func(context.Context, int) (person, error) {
			return person{Given: "Ada", Family: "King", Email: "ada.k@example.com"}, nil
		},
		dualwrite.WithObserver(rec))
	if err != nil {
		fmt.Println(err)
		return
	}
	got, _ := r.Read(ctx, 1)
	r.Wait() // for the shadow read; Close would cancel it
	_ = r.Close()

	fmt.Println("caller got:", got.Given, got.Family)
	for _, c := range rec.Comparisons() {
		for _, d := range c.Diffs {
			fmt.Println("mismatch:", d)
		}
	}
	// Output:
	// caller got: Ada Lovelace
	// mismatch: Family: old="Lovelace" new="King"
	// mismatch: Email: old=[redacted] new=[redacted]
}
