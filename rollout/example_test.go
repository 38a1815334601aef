package rollout_test

import (
	"fmt"

	"github.com/schemashift/schemashift/rollout"
)

func ExamplePhase() {
	for p := rollout.Planned; p <= rollout.Contracted; p++ {
		fmt.Printf("%s:%s ", p, p.Stage())
	}
	fmt.Println()
	// Output:
	// planned:off expanded:off dualwrite:dualwrite backfill:dualwrite verify:dualwrite shadow:shadow live:live rampdown:rampdown complete:complete contracted:complete
}
