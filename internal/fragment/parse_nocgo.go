//go:build !cgo

package fragment

import (
	pg "github.com/pganalyze/pg_query_go/v6"
	pgquery "github.com/wasilibs/go-pgquery"
)

// Parse parses sql as PostgreSQL's parser does: without cgo, the same
// libpg_query compiled to WebAssembly (wazero), with no C toolchain and
// a slower first parse.
func Parse(sql string) (*pg.ParseResult, error) { return pgquery.Parse(sql) }

// Scan splits sql into tokens as PostgreSQL's lexer does.
func Scan(sql string) (*pg.ScanResult, error) { return pgquery.Scan(sql) }

// Parser names the parser build in use.
const Parser = "libpg_query (WebAssembly, cgo-free)"
