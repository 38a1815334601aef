// Package fragment holds what the library's SQL fragments (the
// expressions, types and conditions a user's code gives, which go into
// statements as text) may be: read by PostgreSQL's own lexer and parser
// (libpg_query; natively with cgo, compiled to WebAssembly without it),
// never by a hand-written reading of quotes. A fragment that ends a
// string, a name or a comment at a different place for one reader than
// for another could carry a statement of its own past a check: see
// [Lexical] and [Expression].
package fragment
