//go:build cgo

package fragment

import pg "github.com/pganalyze/pg_query_go/v6"

// Parse parses sql as PostgreSQL's parser does: with cgo, libpg_query
// called natively.
func Parse(sql string) (*pg.ParseResult, error) { return pg.Parse(sql) }

// Scan splits sql into tokens as PostgreSQL's lexer does.
func Scan(sql string) (*pg.ScanResult, error) { return pg.Scan(sql) }

// Parser names the parser build in use.
const Parser = "libpg_query (cgo)"
