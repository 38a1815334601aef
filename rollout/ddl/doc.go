// Package ddl renders safe expand and contract operations to PostgreSQL,
// runs them with short lock timeouts and retries ([Executor]), and lints
// hand-written DDL for what would block a running fleet ([Lint]).
//
// Every operation is idempotent (IF [NOT] EXISTS, or a catalog check) and
// knows its reverse where one exists. Indexes are built CONCURRENTLY,
// outside a transaction, and an INVALID index left by a failed build is
// dropped before the retry; constraints are added NOT VALID and validated
// in a separate step; SET NOT NULL goes through a validated CHECK (native
// NOT NULL NOT VALID on PostgreSQL 18+); a unique constraint uses a
// concurrently built index. Renames and type changes are never done in
// place: they become a new column, bridged by dual writes and a backfill,
// and a drop in the contract.
//
// Names are taken whole and kept typed: an index's name is never split at
// a dot, and a [CreateIndex] is reverted (and its INVALID leftover cleaned
// up) in its table's schema, so a same-named index elsewhere is never
// touched. [DropIndex] names its schema in a field of its own.
//
// # What a revert undoes
//
// A revert (and a cleanup inside an apply, such as the helper CHECK of
// [SetNotNull]) touches only what this migration's apply made. Each
// statement of this package's operations names the object it makes or
// drops, and schemashift_ddl_steps records, with each step, whether the
// apply made its object (created) or found it there. A drop in a revert
// runs only when a step of this migration's apply is recorded as the
// object's maker; otherwise it is skipped and recorded with a note
// ("kept: not made by this migration's apply …"), which [WithNotes] and
// [Executor.Notes] report. So [AddColumn] on a table that already has the
// column is a no-op on apply, and its revert leaves the column and its
// rows; an apply that found everything there is reverted to no change.
//
// A run can be cut off at any line. A statement that runs in a
// transaction is recorded in that transaction, so it and its record
// commit together or not at all: an object found there with no record
// was there before. CREATE INDEX CONCURRENTLY cannot run in one, so its
// step is first recorded pending (the index was not there: the intent)
// and committed, then built, then recorded done. On resume, a pending
// step and the index there (valid, or INVALID from the cut-off build,
// which is dropped and built again) mean this migration built it; the
// index there with no pending step means it was there before. (Between
// the intent and the build, an index of the same name made by someone
// else would be taken for this migration's: a window of one statement.)
// An INVALID index of that name not built by this migration is refused,
// not dropped.
//
// An object found there is taken as done only if it is what the
// operation makes; otherwise the apply fails, before changing anything,
// with an error wrapping [ErrExists] that names the object and what
// differs. Compared: a column's type (as PostgreSQL's parser reads it, so
// int and integer are one type, numeric(10,0) and numeric(12,2) two) and
// whether it has a default (not the default's expression: PostgreSQL
// stores it rewritten); a table's kind and its columns' names, order and
// types (not its constraints); an index's table, uniqueness, columns and
// predicate; a constraint's kind, columns, and its expression (CHECK) or
// referenced table, columns and ON DELETE (foreign key). Expressions are
// compared as parsed, without the casts the catalog adds to constants;
// one written differently (IN for = ANY) is refused, never taken as done.
// A constraint found NOT VALID with the operation's definition is
// validated by the apply, as the operation asks, and kept by the revert.
// [AddUnique] never turns an index it did not build into its constraint.
// On PostgreSQL 18, [SetNotNull] takes a column with a validated NOT NULL
// constraint of any name as done, validates one of its own name left NOT
// VALID, and refuses one of another name left NOT VALID.
//
// Rows written by an executor from before created was recorded have it
// NULL: what they made cannot be proven this migration's, so a revert of
// such a migration keeps every object and says so in its notes
// ("applied by an executor that did not record …"); drop them by hand.
// The steps table gains the new columns (object, created, pending) the
// first time a newer executor runs. A caller's own [Op] carries no
// object names: its Down runs as written.
//
// # SQL fragments
//
// Five fields are SQL written by the plan's author, since DDL takes no
// bind parameters: [AddColumn].Type and .Default, [AddCheck].Expr,
// [CreateIndex].Where and [AddTable].Columns. They are parsed, not
// trusted: each is put where the operation puts it, in the statement it
// renders (after ADD COLUMN, after DEFAULT or SET DEFAULT, inside
// CHECK ( … ), after WHERE, between CREATE TABLE's parentheses), and that
// statement is read by PostgreSQL's own parser (libpg_query, the one
// [Lint] uses). The fragment is taken only if the statement is exactly
// one statement of the operation's shape once the fragment's nodes are
// taken out, every node in the fragment's place comes from its text and
// no other node does, and it holds no subquery. So a type is exactly one
// type name (no COLLATE, constraint, STORAGE or second column), a
// default, check or predicate exactly one expression (no second clause,
// constraint, command or statement), and a column list only column
// definitions and table constraints (no LIKE, and nothing after the
// closing parenthesis). Anything else fails, before anything runs, with
// an error naming the operation and the field ("ddl: add column users.x:
// Type: …") that wraps [ErrFragment] and [ErrInvalidOp].
//
// The fragment must also read the same to every reader of the statement:
// PostgreSQL with standard_conforming_strings on or off, and SQLite,
// where the same fragment goes into SQLite's DDL. So comments, ';', NUL
// bytes, $n parameters and backticks are refused, strings must be plain
// '…' (no E'…', $$…$$, U&'…', B'…' or X'…'; a quote in one is doubled,
// never after a backslash), names plain or "…" (no U&"…"), and no string
// or quoted name may stand between [ and ] (SQLite reads [ … ] as a
// name).
// A backslash elsewhere in a string is taken as it is written, as
// PostgreSQL reads it with standard_conforming_strings on, its default.
//
// What is trusted: which types, functions, operators, columns and tables
// a fragment names. A default or check may call any function the
// executor's role can (VALIDATE runs a check on every row); PostgreSQL
// itself refuses what it cannot store (a column in a default, a
// non-IMMUTABLE function in an index predicate).
//
// # SQLite
//
// On a SQLite database (the embedded default for examples and fast tests)
// the executor renders the same operations to plain DDL, each statement in
// its own write transaction. SQLite has no CONCURRENTLY, no NOT VALID and
// no lock_timeout: every DDL statement holds the database's write lock,
// and a writer waits for it up to the connection's busy_timeout.
//
//   - [AddTable], [DropTable] and [DropIndex] run as written, with
//     IF [NOT] EXISTS.
//   - [AddColumn] and [DropColumn] run ALTER TABLE … ADD / DROP COLUMN,
//     skipped when the catalog already shows the column present or gone
//     (SQLite's ALTER TABLE has no IF [NOT] EXISTS). A volatile default
//     is not set: SQLite adds a column only with a constant default and
//     cannot set one later, so the column is added without it.
//   - [CreateIndex] builds CREATE [UNIQUE] INDEX IF NOT EXISTS inside the
//     transaction: writers wait for the build, and a failed build leaves
//     nothing behind. [AddUnique] becomes a unique index.
//   - [AddForeignKey], [AddCheck] and [SetNotNull] fail with
//     [ErrUnsupported] before anything runs: SQLite cannot add a
//     constraint to an existing table, it must be declared when the table
//     is created. They are refused rather than skipped, because a skipped
//     constraint would let the rollout believe the database enforces what
//     it does not.
//
// What a statement gives up on SQLite is its [Statement.Note], for
// example "sqlite: CREATE INDEX without CONCURRENTLY: writers wait for
// the build". The executor records the note with the step in
// schemashift_ddl_steps, hands it to the [WithNotes] callback as the step
// is applied (for the rollout's audit trail), and returns the recorded
// notes from [Executor.Notes]. An [Op] of the caller's own runs on SQLite
// only if it implements [SQLiteOp]; otherwise it fails with
// [ErrUnsupported].
//
// [Lint] checks PostgreSQL DDL, whatever database the executor runs on.
package ddl
