package ledger_test

import (
	"fmt"

	"github.com/schemashift/schemashift/ledger"
)

func ExamplePhase() {
	for p := ledger.Planned; p <= ledger.Contracted; p++ {
		fmt.Printf("%s:%s ", p, p.Stage())
	}
	fmt.Println()
	// Output:
	// planned:off expanded:off dualwrite:dualwrite backfill:dualwrite verify:dualwrite shadow:shadow live:live rampdown:rampdown complete:complete contracted:complete
}
