package contracttest_test

import (
	"fmt"

	"github.com/schemashift/schemashift/contract/contracttest"
)

func ExamplePairs() {
	for _, p := range contracttest.Pairs()[6:9] {
		fmt.Println(p)
	}
	fmt.Println(len(contracttest.Pairs()), "pairs")
	// Output:
	// writer=off/reader=dualwrite
	// writer=dualwrite/reader=off
	// writer=dualwrite/reader=shadow
	// 16 pairs
}
