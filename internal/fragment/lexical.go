package fragment

import (
	"fmt"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/schemashift/schemashift/internal/dialect"
)

// Lexical returns why s does not read the same to every reader of the
// statements it goes into, or "": PostgreSQL's lexer with
// standard_conforming_strings on or off, and each of readers (the
// databases it goes into; see [dialect.Rendering]'s MisreadIn). Any
// token that could end a string, a name or a comment at a different
// place for one of them is refused:
//
//   - comments, ';', a NUL byte, text that is not UTF-8, and spacing other
//     than space, tab, CR and LF;
//   - string constants other than plain '…' (E'…', $$…$$, U&'…', B'…',
//     X'…'), and a backslash before a quote in one ('it\'s' ends at a
//     different quote when standard_conforming_strings is off);
//   - U&"…" names, $n parameters, and a backtick (SQLite quotes names
//     with it);
//   - what a reader reads otherwise: on SQLite, '?', and '@', '#', ':'
//     or '$' before a letter, digit, '_' or '$' (outside strings and
//     quoted names; a '::' cast is taken), and a string or a quoted name
//     between [ and ] (SQLite reads [ … ] as a name, whatever it holds);
//     on PostgreSQL, a $ inside a name (a driver that puts parameters in
//     on the client may read a parameter or a dollar quote there).
func Lexical(s string, readers []dialect.Rendering) string {
	_, why := tokens(s, readers)
	return why
}

// tokens scans s as PostgreSQL's lexer does and returns its tokens, or
// why s does not read the same to every reader (see [Lexical]).
func tokens(s string, readers []dialect.Rendering) ([]*pg.ScanToken, string) {
	if !utf8.ValidString(s) {
		return nil, "is not UTF-8"
	}
	if strings.ContainsRune(s, 0) {
		return nil, "holds a NUL byte"
	}
	res, err := Scan(s)
	if err != nil {
		return nil, fmt.Sprintf("does not scan: %v", err)
	}
	toks := res.GetTokens()
	end := 0
	for _, tok := range toks {
		start := int(tok.Start)
		if start < end || int(tok.End) > len(s) || int(tok.End) < start {
			return nil, "does not scan into tokens"
		}
		if gap := strings.Trim(s[end:start], " \t\r\n"); gap != "" {
			return nil, fmt.Sprintf("holds %q outside any token", gap)
		}
		end = int(tok.End)
		text := s[start:end]
		switch tok.Token {
		case pg.Token_SQL_COMMENT, pg.Token_C_COMMENT:
			return nil, "holds a comment"
		case pg.Token_ASCII_59:
			return nil, "holds a ';'"
		case pg.Token_SCONST:
			if !strings.HasPrefix(text, "'") {
				return nil, fmt.Sprintf("holds the string %s: only plain '…' strings are taken", Short(text))
			}
			if strings.Contains(text, `\'`) {
				return nil, fmt.Sprintf("holds a backslash before a quote in %s", Short(text))
			}
			continue
		case pg.Token_USCONST, pg.Token_BCONST, pg.Token_XCONST:
			return nil, fmt.Sprintf("holds the constant %s: only plain '…' strings are taken", Short(text))
		case pg.Token_UIDENT:
			return nil, fmt.Sprintf("holds the name %s: only plain \"…\" names are taken", Short(text))
		case pg.Token_PARAM:
			return nil, "holds a parameter"
		case pg.Token_IDENT:
			if strings.HasPrefix(text, `"`) {
				continue
			}
		}
		if strings.ContainsRune(text, '`') {
			return nil, "holds a backtick"
		}
		if tok.Token != pg.Token_TYPECAST {
			for _, d := range readers {
				if why := d.MisreadIn(s, start, end); why != "" {
					return nil, why
				}
			}
		}
	}
	if gap := strings.Trim(s[end:], " \t\r\n"); gap != "" {
		return nil, fmt.Sprintf("holds %q outside any token", gap)
	}
	return toks, ""
}

// Short cuts s for an error message.
func Short(s string) string {
	if len(s) <= 80 {
		return s
	}
	cut := 80
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
