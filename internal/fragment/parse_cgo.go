//go:build cgo

package fragment

import pg "github.com/pganalyze/pg_query_go/v6"

// With cgo, libpg_query, PostgreSQL's own parser, is called natively.
var (
	// Parse parses SQL as PostgreSQL's parser does.
	Parse = pg.Parse
	// Scan splits SQL into tokens as PostgreSQL's lexer does.
	Scan = pg.Scan
)

// Parser names the parser build in use.
const Parser = "libpg_query (cgo)"
