//go:build !cgo

package ddl

import pgquery "github.com/wasilibs/go-pgquery"

// Without cgo, the linter runs the same libpg_query compiled to
// WebAssembly (wazero): no C toolchain, a slower first parse.
var (
	parse = pgquery.Parse
	scan  = pgquery.Scan
)

// Parser names the parser build in use.
const Parser = "libpg_query (WebAssembly, cgo-free)"
