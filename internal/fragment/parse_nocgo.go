//go:build !cgo

package fragment

import pgquery "github.com/wasilibs/go-pgquery"

// Without cgo, the same libpg_query compiled to WebAssembly (wazero) is
// run: no C toolchain, a slower first parse.
var (
	// Parse parses SQL as PostgreSQL's parser does.
	Parse = pgquery.Parse
	// Scan splits SQL into tokens as PostgreSQL's lexer does.
	Scan = pgquery.Scan
)

// Parser names the parser build in use.
const Parser = "libpg_query (WebAssembly, cgo-free)"
