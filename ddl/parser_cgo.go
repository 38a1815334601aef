//go:build cgo

package ddl

import pg "github.com/pganalyze/pg_query_go/v6"

// With cgo, the linter calls libpg_query, PostgreSQL's own parser, natively.
var (
	parse = pg.Parse
	scan  = pg.Scan
)

// Parser names the parser build in use.
const Parser = "libpg_query (cgo)"
