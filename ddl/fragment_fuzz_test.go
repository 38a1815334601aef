package ddl

import (
	"errors"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/schemashift/schemashift/internal/fragment"
)

// Whatever a fragment field holds, an operation either refuses it with
// ErrFragment or renders statements that PostgreSQL's parser reads as
// exactly one statement each, of the operation's kind and with one
// command, holding no comment and no ';'.
func FuzzFragment(f *testing.F) {
	for _, s := range []string{
		"text", "numeric(12,2)", "timestamp with time zone", "text[]", "now()", "'it''s'", "deleted_at IS NULL",
		"amount >= 0 AND currency IN ('EUR','USD')", "id int PRIMARY KEY, CHECK (id > 0)",
		"text, DROP COLUMN keep_me", `"it's" IS NULL) NOT VALID; DROP TABLE canary; -- '`, "0 NOT NULL",
		`'\' || ';DROP TABLE canary;--'`, "$$;$$", "a int) INHERITS (canary", "x) OR (true", "1 FROM canary",
		"a['] IS NULL; DROP TABLE canary; --'] IS NULL", "(SELECT 1)", "int -- x", "E'\\''",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, o := range []Op{
			AddColumn{Table: "t", Column: "c", Type: s},
			AddColumn{Table: "t", Column: "c", Type: "text", Default: s},
			AddColumn{Table: "t", Column: "c", Type: "text", Default: s, Volatile: true},
			AddCheck{Name: "n", Table: "t", Expr: s},
			CreateIndex{Name: "i", Table: "t", Columns: []string{"c"}, Where: s},
			AddTable{Table: "t", Columns: s},
		} {
			stmts, err := o.Up(15)
			if err != nil {
				if !errors.Is(err, ErrFragment) {
					t.Fatalf("%s: %v does not wrap ErrFragment", o, err)
				}
				continue
			}
			for _, st := range stmts {
				tree, err := fragment.Parse(st.SQL)
				if err != nil || len(tree.GetStmts()) != 1 {
					t.Fatalf("%s: %q is not one statement (%v)", o, st.SQL, err)
				}
				n := tree.Stmts[0].GetStmt()
				switch o.(type) {
				case AddTable:
					if n.GetCreateStmt() == nil {
						t.Fatalf("%s: %q is not CREATE TABLE", o, st.SQL)
					}
				case CreateIndex:
					if n.GetIndexStmt() == nil {
						t.Fatalf("%s: %q is not CREATE INDEX", o, st.SQL)
					}
				default:
					if len(n.GetAlterTableStmt().GetCmds()) != 1 {
						t.Fatalf("%s: %q is not ALTER TABLE with one command", o, st.SQL)
					}
				}
				toks, err := fragment.Scan(st.SQL)
				if err != nil {
					t.Fatalf("%s: %q: %v", o, st.SQL, err)
				}
				for _, tok := range toks.GetTokens() {
					switch tok.Token {
					case pg.Token_SQL_COMMENT, pg.Token_C_COMMENT, pg.Token_ASCII_59:
						t.Fatalf("%s: %q holds a comment or a ';'", o, st.SQL)
					}
				}
			}
		}
	})
}
