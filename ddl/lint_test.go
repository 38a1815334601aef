package ddl_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ddl"
)

const lt = "SET lock_timeout = '2s';\n"

// corpus: for each rule, scripts that must trip it and scripts that must
// not. Scripts start with a lock_timeout unless the rule is about it.
var corpus = []struct {
	rule   ddl.Rule
	unsafe []string
	safe   []string
}{
	{ddl.RuleIndexNotConcurrent,
		[]string{lt + `CREATE INDEX users_email ON users (email)`, lt + `CREATE UNIQUE INDEX "Users Email" ON "Users" (lower(email))`,
			lt + `CREATE INDEX ON app.users USING gin (tags) WHERE deleted_at IS NULL`},
		[]string{`CREATE INDEX CONCURRENTLY users_email ON users (email)`,
			`CREATE TABLE t (a int); CREATE INDEX t_a ON t (a)`, // a table created in the script is empty
			`CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (a)`}},
	{ddl.RuleConcurrentIndexInTransaction,
		[]string{`BEGIN; CREATE INDEX CONCURRENTLY i ON users (a); COMMIT;`, `START TRANSACTION; DROP INDEX CONCURRENTLY i; COMMIT`,
			"begin;\n" + lt + "create index concurrently i2 on users (b);\ncommit;",
			`BEGIN; REINDEX INDEX CONCURRENTLY users_email; COMMIT`},
		[]string{`CREATE INDEX CONCURRENTLY i ON users (a)`, `BEGIN; COMMIT; CREATE INDEX CONCURRENTLY i ON users (a)`,
			`BEGIN; ROLLBACK; DROP INDEX CONCURRENTLY IF EXISTS i`, `REINDEX TABLE CONCURRENTLY users`}},
	{ddl.RuleConstraintNotValid,
		[]string{lt + `ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id)`,
			lt + `ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0)`,
			lt + `ALTER TABLE "Orders" ADD FOREIGN KEY (u) REFERENCES u (id), ADD CONSTRAINT c CHECK (x <> 0) NOT VALID`},
		[]string{lt + `ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID`,
			lt + `ALTER TABLE orders VALIDATE CONSTRAINT orders_user`,
			`CREATE TABLE t (a int); ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)`}},
	{ddl.RuleSetNotNull,
		[]string{lt + `ALTER TABLE users ALTER COLUMN email SET NOT NULL`,
			lt + `ALTER TABLE app.users ALTER email SET NOT NULL, ALTER name DROP DEFAULT`,
			lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID; ALTER TABLE users ALTER email SET NOT NULL`,
			// A validated constraint proves only what it says, for its own columns.
			lt + `ALTER TABLE users VALIDATE CONSTRAINT users_org_fk; ALTER TABLE users ALTER email SET NOT NULL`,
			lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (name IS NOT NULL) NOT VALID; ALTER TABLE users VALIDATE CONSTRAINT c; ALTER TABLE users ALTER email SET NOT NULL`,
			lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL OR name IS NOT NULL) NOT VALID; ALTER TABLE users VALIDATE CONSTRAINT c; ALTER TABLE users ALTER email SET NOT NULL`,
			lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (email <> '') NOT VALID; ALTER TABLE users VALIDATE CONSTRAINT c; ALTER TABLE users ALTER email SET NOT NULL`,
			lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID; ALTER TABLE orders VALIDATE CONSTRAINT c; ALTER TABLE users ALTER email SET NOT NULL`,
			lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID; ALTER TABLE users VALIDATE CONSTRAINT c; ALTER TABLE users DROP CONSTRAINT c; ALTER TABLE users ALTER email SET NOT NULL`,
			lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID; ALTER TABLE users VALIDATE CONSTRAINT c; ALTER TABLE users ALTER email SET NOT NULL, ALTER name SET NOT NULL`},
		[]string{lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID; ALTER TABLE users VALIDATE CONSTRAINT c; ALTER TABLE users ALTER email SET NOT NULL`,
			`CREATE TABLE t (a int); ALTER TABLE t ALTER a SET NOT NULL`,
			lt + `ALTER TABLE users ALTER email DROP NOT NULL`,
			lt + `ALTER TABLE app.users ADD CONSTRAINT c CHECK (email IS NOT NULL AND (NOT (name IS NULL)) AND age > 0) NOT VALID;
ALTER TABLE app.users VALIDATE CONSTRAINT c;
ALTER TABLE app.users ALTER email SET NOT NULL, ALTER name SET NOT NULL;
ALTER TABLE app.users DROP CONSTRAINT c`,
			lt + `ALTER TABLE "Users" ADD CONSTRAINT "Email set" CHECK ("E-mail" IS NOT NULL) NOT VALID; ALTER TABLE "Users" VALIDATE CONSTRAINT "Email set"; ALTER TABLE "Users" ALTER "E-mail" SET NOT NULL`,
			// validated as it is added (its own finding is constraint-without-not-valid)
			lt + `ALTER TABLE users ADD CONSTRAINT c CHECK (users.email IS NOT NULL); ALTER TABLE users ALTER email SET NOT NULL`}},
	{ddl.RuleColumnTypeChange,
		[]string{lt + `ALTER TABLE users ALTER COLUMN id TYPE bigint`, lt + `ALTER TABLE users ALTER name SET DATA TYPE varchar(200)`,
			lt + `ALTER TABLE "odd ""name""" ALTER "Amount" TYPE numeric USING "Amount"::numeric`},
		[]string{lt + `ALTER TABLE users ADD COLUMN id_new bigint`, `CREATE TABLE t (a int); ALTER TABLE t ALTER a TYPE bigint`,
			lt + `ALTER TABLE users ALTER name SET DEFAULT ''`}},
	{ddl.RuleRename,
		[]string{lt + `ALTER TABLE users RENAME COLUMN full_name TO name`, lt + `ALTER TABLE users RENAME TO people`,
			lt + `ALTER TABLE app.users RENAME "Full Name" TO full_name`},
		[]string{lt + `ALTER INDEX users_email RENAME TO users_email_idx`, lt + `ALTER TABLE users ADD COLUMN given_name text`,
			lt + `COMMENT ON COLUMN users.full_name IS 'rename me later'`}},
	{ddl.RuleDropInExpand,
		[]string{lt + `ALTER TABLE users DROP COLUMN full_name`, lt + `DROP TABLE legacy_users`,
			lt + `ALTER TABLE users ADD COLUMN a int, DROP COLUMN IF EXISTS b`},
		[]string{lt + `ALTER TABLE users ADD COLUMN a int`, lt + `DROP INDEX CONCURRENTLY IF EXISTS users_email`,
			lt + `ALTER TABLE users DROP CONSTRAINT IF EXISTS c`}},
	{ddl.RuleNotNullWithoutDefault,
		[]string{lt + `ALTER TABLE users ADD COLUMN tenant int NOT NULL`, lt + `ALTER TABLE users ADD COLUMN code text PRIMARY KEY`,
			lt + `ALTER TABLE users ADD COLUMN a int, ADD COLUMN b int NOT NULL`},
		[]string{lt + `ALTER TABLE users ADD COLUMN tenant int NOT NULL DEFAULT 0`, lt + `ALTER TABLE users ADD COLUMN tenant int`,
			`CREATE TABLE t (a int NOT NULL)`}},
	{ddl.RuleVolatileDefault,
		[]string{lt + `ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()`,
			lt + `ALTER TABLE users ADD COLUMN r float8 NOT NULL DEFAULT random() * 10`,
			lt + `ALTER TABLE users ADD COLUMN at timestamptz DEFAULT pg_catalog.clock_timestamp()`,
			lt + `ALTER TABLE users ADD COLUMN seq bigserial`, lt + `ALTER TABLE app.users ADD COLUMN IF NOT EXISTS n SERIAL NOT NULL`,
			lt + `ALTER TABLE users ADD COLUMN a int, ADD COLUMN n smallserial`, lt + `ALTER TABLE users ADD COLUMN n serial8`,
			lt + `ALTER TABLE users ADD COLUMN n int DEFAULT nextval('users_n_seq')`, lt + `ALTER TABLE users ADD COLUMN token uuid DEFAULT uuid_generate_v4()`,
			lt + `ALTER TABLE users ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY`,
			`CREATE TABLE t (a int); ` + lt + `ALTER TABLE users ADD COLUMN n bigserial`}, // t is new, users is not
		[]string{lt + `ALTER TABLE users ADD COLUMN at timestamptz DEFAULT now()`, lt + `ALTER TABLE users ADD COLUMN n int DEFAULT 0`,
			`CREATE TABLE t (id uuid DEFAULT gen_random_uuid())`,
			lt + `ALTER TABLE users ADD COLUMN at timestamptz NOT NULL DEFAULT current_timestamp`,
			lt + `ALTER TABLE users ADD COLUMN at timestamptz DEFAULT statement_timestamp(), ADD COLUMN x bigint DEFAULT txid_current()`,
			`CREATE TABLE t (id bigserial PRIMARY KEY, n int GENERATED ALWAYS AS IDENTITY)`,
			`CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN id bigserial, ADD COLUMN token uuid DEFAULT gen_random_uuid()`,
			lt + `ALTER TABLE users ADD COLUMN n bigint; ALTER TABLE users ALTER n SET DEFAULT nextval('users_n_seq')`,
			lt + `ALTER TABLE users ADD COLUMN "serial" text`}},
	{ddl.RuleMissingLockTimeout,
		[]string{`ALTER TABLE users ADD COLUMN a int`, `CREATE INDEX i ON users (a)`,
			`ALTER TABLE users RENAME COLUMN a TO b; SET lock_timeout = '1s'`,
			lt + `RESET lock_timeout; ALTER TABLE users ADD COLUMN a int`, lt + `SET lock_timeout TO DEFAULT; CREATE INDEX i ON users (a)`,
			lt + `RESET ALL; ALTER TABLE users ADD COLUMN a int`, `DROP INDEX users_email`, `REINDEX TABLE users`},
		[]string{lt + `ALTER TABLE users ADD COLUMN a int`, `SET LOCAL lock_timeout TO 500; ALTER TABLE users ADD COLUMN a int`,
			`CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN b int`,
			`SELECT set_config('lock_timeout', '3s', false); ALTER TABLE users ADD COLUMN a int`,
			`DROP INDEX CONCURRENTLY users_email`, `CREATE TABLE t (a int); CREATE INDEX t_a ON t (a); DROP INDEX t_a; REINDEX TABLE t`}},
	{ddl.RuleUniqueWithoutIndex,
		[]string{lt + `ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)`, lt + `ALTER TABLE users ADD PRIMARY KEY (id)`,
			lt + `ALTER TABLE users ADD UNIQUE (tenant, email)`},
		[]string{lt + `ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx`,
			`CREATE TABLE t (a int UNIQUE)`, lt + `ALTER TABLE users ADD PRIMARY KEY USING INDEX users_pk_idx`}},
	{ddl.RuleJSONType,
		[]string{lt + `ALTER TABLE users ADD COLUMN prefs json`, `CREATE TABLE t (a json)`, lt + `ALTER TABLE users ALTER prefs TYPE json`},
		[]string{lt + `ALTER TABLE users ADD COLUMN prefs jsonb`, `CREATE TABLE t (a jsonb, "json" text)`, `SELECT '{}'::json`}},
	{ddl.RuleIdentifierTooLong,
		[]string{`CREATE TABLE ` + strings.Repeat("t", 64) + ` (a int)`, lt + `ALTER TABLE users ADD COLUMN ` + strings.Repeat("c", 70) + ` int`,
			`CREATE INDEX CONCURRENTLY ` + strings.Repeat("i", 64) + ` ON users (a)`},
		[]string{`CREATE TABLE ` + strings.Repeat("t", 63) + ` (a int)`, lt + `ALTER TABLE users ADD COLUMN ` + strings.Repeat("c", 63) + ` int`,
			`CREATE INDEX CONCURRENTLY i ON users (a)`}},
	{ddl.RuleDropIndexNotConcurrent,
		[]string{lt + `DROP INDEX users_email`, lt + `DROP INDEX IF EXISTS app.users_email, users_name CASCADE`,
			lt + "BEGIN;\ndrop index \"Users Email\";\nCOMMIT;",
			// built concurrently on an existing table: dropping it still locks that table
			lt + `CREATE INDEX CONCURRENTLY i ON users (a); DROP INDEX i`,
			`CREATE TABLE t (a int); CREATE INDEX t_a ON t (a); ` + lt + `DROP INDEX t_a, users_email`,
			`CREATE TABLE t (a int); CREATE INDEX "app.t_a" ON t (a); ` + lt + `DROP INDEX app.t_a`}, // another index than "app.t_a"
		[]string{lt + `DROP INDEX CONCURRENTLY users_email`, lt + `DROP INDEX CONCURRENTLY IF EXISTS app.users_email`,
			`CREATE TABLE t (a int); CREATE INDEX t_a ON t (a); DROP INDEX t_a`, // a table created in the script is empty
			`CREATE TABLE app.t (a int); CREATE INDEX t_a ON app.t (a); DROP INDEX app.t_a`,
			lt + `DROP TABLE legacy_users`}},
	{ddl.RuleReindexNotConcurrent,
		[]string{lt + `REINDEX INDEX users_email`, lt + `REINDEX TABLE app.users`, lt + `REINDEX (VERBOSE) TABLE users`,
			lt + `REINDEX (CONCURRENTLY false) INDEX users_email`, lt + `REINDEX SCHEMA app`, lt + `REINDEX DATABASE shop`, `REINDEX SYSTEM`},
		[]string{lt + `REINDEX INDEX CONCURRENTLY users_email`, lt + `REINDEX TABLE CONCURRENTLY app.users`,
			lt + `REINDEX (VERBOSE, CONCURRENTLY) TABLE users`, lt + `REINDEX (CONCURRENTLY on) SCHEMA app`,
			`CREATE TABLE t (a int); CREATE INDEX t_a ON t (a); REINDEX TABLE t; REINDEX INDEX t_a`}},
	{ddl.RuleLockTimeoutDisabled,
		[]string{`SET lock_timeout = 0`, `SET lock_timeout TO '0'; ALTER TABLE users ADD COLUMN a int`, `SET LOCAL lock_timeout = '0s'`,
			`set session lock_timeout to '0ms'`, `SET lock_timeout = 0.4`, `SET lock_timeout = '100us'`, `SET lock_timeout = ' 0 min '`,
			`SELECT set_config('lock_timeout', '0', false)`, `SELECT pg_catalog.set_config('LOCK_TIMEOUT', '0'::text, true)`,
			lt + `ALTER TABLE users ADD COLUMN a int; SET lock_timeout = 0; CREATE INDEX CONCURRENTLY i ON users (a)`},
		[]string{lt, `SET lock_timeout = 500`, `SET lock_timeout TO '2s'`, `SET LOCAL lock_timeout = '0.6'`, `SET lock_timeout = '1min'`,
			`SET statement_timeout = 0`, `SET lock_timeout TO DEFAULT`, `RESET lock_timeout`,
			`SELECT set_config('lock_timeout', '5s', false)`, `SELECT set_config('statement_timeout', '0', false)`,
			`SELECT '0' AS lock_timeout`}},
}

func rulesOf(fs []ddl.Finding) []ddl.Rule {
	var out []ddl.Rule
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

func TestLintCorpus(t *testing.T) {
	t.Parallel()
	for _, c := range corpus {
		require.GreaterOrEqual(t, len(c.unsafe), 3, c.rule)
		require.GreaterOrEqual(t, len(c.safe), 3, c.rule)
		for _, sql := range c.unsafe {
			fs, err := ddl.Lint(sql, ddl.ExpandStep)
			require.NoError(t, err, sql)
			assert.Contains(t, rulesOf(fs), c.rule, "%s should trip %s", sql, c.rule)
		}
		for _, sql := range c.safe {
			fs, err := ddl.Lint(sql, ddl.ExpandStep)
			require.NoError(t, err, sql)
			assert.NotContains(t, rulesOf(fs), c.rule, "%s should not trip %s: %v", sql, c.rule, fs)
		}
	}
	// Every rule is covered.
	covered := map[ddl.Rule]bool{ddl.RuleUnknownRule: true, ddl.RuleUnlinted: true}
	for _, c := range corpus {
		covered[c.rule] = true
	}
	for _, r := range ddl.Rules() {
		assert.True(t, covered[r], "rule %s has no corpus", r)
	}
}

func TestFindingNamesRuleStatementPositionAndFix(t *testing.T) {
	t.Parallel()
	script := "SET lock_timeout = '2s';\n\n-- add the new columns\nALTER TABLE users ADD COLUMN given_name text;\n  CREATE INDEX users_given ON users (given_name);\n"
	fs, err := ddl.Lint(script, ddl.ExpandStep)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	f := fs[0]
	assert.Equal(t, ddl.RuleIndexNotConcurrent, f.Rule)
	assert.Equal(t, "CREATE INDEX users_given ON users (given_name)", f.Statement)
	assert.Equal(t, 5, f.Line)
	assert.Equal(t, 3, f.Column)
	assert.Contains(t, f.Fix, "CONCURRENTLY")
	assert.Contains(t, f.String(), "5:3: index-not-concurrent")
}

func TestSilencingComments(t *testing.T) {
	t.Parallel()
	fs, err := ddl.Lint(lt+"-- schemashift:ignore index-not-concurrent\nCREATE INDEX i ON users (a);\nCREATE INDEX j ON users (b);", ddl.ExpandStep)
	require.NoError(t, err)
	require.Len(t, fs, 1, "only the statement the comment precedes is silenced")
	assert.Contains(t, fs[0].Statement, "CREATE INDEX j")

	fs, err = ddl.Lint(lt+"/* schemashift:ignore column-type-change, rename */ ALTER TABLE users ALTER id TYPE bigint", ddl.ExpandStep)
	require.NoError(t, err)
	assert.Empty(t, fs)

	fs, err = ddl.Lint(lt+"-- schemashift:ignore index-not-concurent\nCREATE INDEX i ON users (a)", ddl.ExpandStep)
	require.NoError(t, err)
	assert.ElementsMatch(t, []ddl.Rule{ddl.RuleUnknownRule, ddl.RuleIndexNotConcurrent}, rulesOf(fs), "a misspelt rule silences nothing and is itself a finding")
}

func TestLintTrickyScripts(t *testing.T) {
	t.Parallel()
	// Several statements; DO blocks are noted as unlinted; quoted names
	// that look like keywords; a contract step may drop.
	fs, err := ddl.Lint(`SET lock_timeout = '1s';
DO $$ BEGIN EXECUTE 'CREATE INDEX i ON users (a)'; END $$;
ALTER TABLE "select" ADD COLUMN "json" jsonb;
ALTER TABLE users DROP COLUMN full_name;`, ddl.ContractStep)
	require.NoError(t, err)
	assert.Equal(t, []ddl.Rule{ddl.RuleUnlinted}, rulesOf(fs))

	_, err = ddl.Lint(`ALTER TABLE users ADD COLUMN`, ddl.ExpandStep)
	assert.ErrorContains(t, err, "parse DDL")

	fs, err = ddl.Lint(``, ddl.ExpandStep)
	require.NoError(t, err)
	assert.Empty(t, fs)
}

func TestLintFindingsExplainRiskAndFix(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, sql string
		rule      ddl.Rule
		message   string // the risk, in the message
		fix       string // the safe form, in the fix
	}{
		{"drop index", lt + "DROP INDEX users_email", ddl.RuleDropIndexNotConcurrent, "ACCESS EXCLUSIVE", "DROP INDEX CONCURRENTLY"},
		{"reindex", lt + "REINDEX TABLE users", ddl.RuleReindexNotConcurrent, "blocks writes", "REINDEX … CONCURRENTLY"},
		{"reindex system", "REINDEX SYSTEM", ddl.RuleReindexNotConcurrent, "cannot run CONCURRENTLY", "CONCURRENTLY"},
		{"lock timeout off", "SET lock_timeout = '0s'", ddl.RuleLockTimeoutDisabled, "waits for its lock forever", "lock_timeout such as '2s'"},
		{"serial", lt + "ALTER TABLE users ADD COLUMN n bigserial", ddl.RuleVolatileDefault, "bigserial", "in place of serial"},
		{"identity", lt + "ALTER TABLE users ADD COLUMN n int GENERATED BY DEFAULT AS IDENTITY", ddl.RuleVolatileDefault, "IDENTITY", "in place of serial or identity"},
		{"set not null", lt + "ALTER TABLE users VALIDATE CONSTRAINT fk; ALTER TABLE users ALTER email SET NOT NULL", ddl.RuleSetNotNull, "no validated CHECK (email IS NOT NULL)", "VALIDATE CONSTRAINT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fs, err := ddl.Lint(c.sql, ddl.ExpandStep)
			require.NoError(t, err)
			require.Len(t, fs, 1, "%v", fs)
			assert.Equal(t, c.rule, fs[0].Rule)
			assert.Contains(t, fs[0].Message, c.message)
			assert.Contains(t, fs[0].Fix, c.fix)
			assert.Contains(t, fs[0].String(), ": "+string(c.rule)+": ")
		})
	}
}

func TestLintLockTimeoutDisabled(t *testing.T) {
	t.Parallel()
	// The SET is the finding; the DDL after it is not reported again as
	// missing a lock_timeout, so one comment silences the choice.
	fs, err := ddl.Lint("SET lock_timeout = 0;\nALTER TABLE users ADD COLUMN a int;", ddl.ExpandStep)
	require.NoError(t, err)
	assert.Equal(t, []ddl.Rule{ddl.RuleLockTimeoutDisabled}, rulesOf(fs))
	assert.Equal(t, 1, fs[0].Line)

	fs, err = ddl.Lint("-- schemashift:ignore lock-timeout-disabled\nSET lock_timeout = 0;\nALTER TABLE users ADD COLUMN a int;", ddl.ExpandStep)
	require.NoError(t, err)
	assert.Empty(t, fs)

	// Turned off after DDL that had one: the finding is on the SET.
	fs, err = ddl.Lint(lt+"ALTER TABLE users ADD COLUMN a int;\nSET lock_timeout TO '0';\nALTER TABLE users ADD COLUMN b int;", ddl.ExpandStep)
	require.NoError(t, err)
	require.Equal(t, []ddl.Rule{ddl.RuleLockTimeoutDisabled}, rulesOf(fs))
	assert.Equal(t, 3, fs[0].Line)

	// DEFAULT and RESET undo the script's own timeout: the next DDL needs one.
	for _, undo := range []string{"RESET lock_timeout", "SET lock_timeout TO DEFAULT", "RESET ALL"} {
		fs, err = ddl.Lint(lt+undo+";\nCREATE INDEX CONCURRENTLY i ON users (a);\nALTER TABLE users ADD COLUMN b int;", ddl.ExpandStep)
		require.NoError(t, err)
		require.Equal(t, []ddl.Rule{ddl.RuleMissingLockTimeout}, rulesOf(fs), undo)
		assert.Equal(t, 4, fs[0].Line, undo)
	}
}

func TestLintSetNotNullPerColumn(t *testing.T) {
	t.Parallel()
	// One validated check proves two columns; the third column of the same
	// statement is still reported, by name.
	fs, err := ddl.Lint(lt+`ALTER TABLE users ADD CONSTRAINT c CHECK (a IS NOT NULL AND b IS NOT NULL) NOT VALID;
ALTER TABLE users ADD CONSTRAINT d FOREIGN KEY (org) REFERENCES orgs (id) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT c, VALIDATE CONSTRAINT d;
ALTER TABLE users ALTER a SET NOT NULL, ALTER b SET NOT NULL, ALTER org SET NOT NULL;`, ddl.ExpandStep)
	require.NoError(t, err)
	require.Equal(t, []ddl.Rule{ddl.RuleSetNotNull}, rulesOf(fs))
	assert.Contains(t, fs[0].Message, "users.org")
}

func FuzzLint(f *testing.F) {
	for _, c := range corpus {
		for _, s := range append(c.unsafe, c.safe...) {
			f.Add(s)
		}
	}
	f.Add("-- schemashift:ignore\n")
	f.Add("DO $$ $$; /* unterminated")
	f.Fuzz(func(t *testing.T, script string) {
		fs, err := ddl.Lint(script, ddl.ExpandStep)
		if err != nil {
			return
		}
		for _, x := range fs {
			if x.Line < 1 || x.Column < 1 || x.Fix == "" {
				t.Fatalf("bad finding %+v for %q", x, script)
			}
		}
	})
}
