package fragment

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/schemashift/schemashift/internal/dialect"
)

// Expression returns why s cannot be one expression put in a statement
// between parentheses, or "": it must read the same to PostgreSQL's
// lexer and to each of readers (see [Lexical]), hold a token, close
// every parenthesis and bracket it opens, in order, and close none it
// did not open (it would end the statement's parenthesis and go on
// outside it), and hold no comma outside them (a list of expressions is
// not one: in a statement's row or select list it would add one of its
// own).
func Expression(s string, readers []dialect.Rendering) string {
	if strings.TrimSpace(s) == "" {
		return "is empty"
	}
	toks, why := tokens(s, readers)
	if why != "" {
		return why
	}
	var open []pg.Token
	for _, tok := range toks {
		switch tok.Token {
		case pg.Token_ASCII_40, pg.Token_ASCII_91: // ( [
			open = append(open, tok.Token)
		case pg.Token_ASCII_41, pg.Token_ASCII_93: // ) ]
			want := pg.Token_ASCII_40
			if tok.Token == pg.Token_ASCII_93 {
				want = pg.Token_ASCII_91
			}
			if len(open) == 0 || open[len(open)-1] != want {
				return "closes a " + s[tok.Start:tok.End] + " it did not open"
			}
			open = open[:len(open)-1]
		case pg.Token_ASCII_44: // ,
			if len(open) == 0 {
				return "holds a ',' outside parentheses: a list of expressions, not one"
			}
		}
	}
	if len(open) > 0 {
		return "leaves a parenthesis or a bracket open"
	}
	return ""
}
