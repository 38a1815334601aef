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
// Ownership moves with each statement, in the write that records it (the
// statement's own transaction when it has one): a step that makes its
// object voids every other record of making an object of that name (the
// object they name is gone), and a drop that runs voids every record of
// making what it dropped. A revert's drop also removes its apply's record
// of the step that made the object (and of that op's steps that make
// nothing, such as a VALIDATE), and an apply starts by clearing its
// revert's records: so a revert cut off and followed by an apply makes
// again what the revert dropped, and an apply cut off and followed by a
// revert undoes what it made. A step recorded done whose object is gone
// (dropped by hand, or by a revert cut off after its drop) runs again.
// A helper (the CHECK of [SetNotNull]) dropped by an apply is no one's
// any more, so a CHECK of that name made by hand later is kept.
//
// A table named without its schema is resolved once, by the migration's
// first apply on PostgreSQL (the table's schema through the search path;
// for a table not there yet, the schema CREATE TABLE puts it in), and
// recorded in schemashift_ddl_names: the apply's statements, its resumed
// runs and its revert name it with that schema, so a table of that name
// appearing later in a schema earlier on the search path is never touched.
// A revert that ran to its end forgets the resolution. The steps table
// keys objects by that name, so "users" resolved to public and
// "public.users" are one table. On SQLite names are compared as SQLite
// does, without regard to ASCII case ("Users" is users).
//
// Once the executor has found an object absent, it runs the statement
// that makes it without IF NOT EXISTS ([Statement].SQL keeps it, for
// [Executor.Plan] and a run by hand): an object made by another between
// the check and the statement fails it, and the step is tried again,
// finding the object and comparing it as below, never recording it as
// this migration's.
//
// A run can be cut off at any line. A statement that runs in a
// transaction is recorded in that transaction, so it and its record
// commit together or not at all: an object found there with no record
// was there before. CREATE INDEX CONCURRENTLY cannot run in one, so its
// step is first recorded pending (the index was not there: the intent)
// and committed, then built, then recorded done. On resume, a pending
// step and the index there (valid, or INVALID from the cut-off build,
// which is dropped and built again) mean this migration built it; the
// index there with no pending step means it was there before. An index
// found with a pending step is this migration's only if it is INVALID
// (the build cut off) or has the operation's definition; one of another
// definition is refused on resume and kept by a revert. A build that
// fails because an index of that name appeared since the intent voids
// the intent. What remains: a run cut off between its intent and the end
// of its build, and an index of the same definition made by someone else
// before the run is resumed or reverted, is taken for this migration's.
// An INVALID index of that name not built by this migration is refused,
// not dropped.
//
// An object found there is taken as done only if it is what the
// operation makes; otherwise the apply fails, before changing anything,
// with an error wrapping [ErrExists] that names the object and what
// differs. Compared: a column's type (as PostgreSQL's parser reads it, so
// int and integer are one type, numeric(10,0) and numeric(12,2) two),
// whether it has a default (not the default's expression: PostgreSQL
// stores it rewritten), that it is nullable, and (PostgreSQL) that its
// collation is its type's; a table's kind and its columns' names, order
// and types (not its constraints); an index's whole definition as
// pg_get_indexdef renders it (table, uniqueness, method, columns,
// INCLUDE, NULLS NOT DISTINCT, predicate); a constraint's kind, columns,
// that it is neither DEFERRABLE nor INITIALLY DEFERRED, and its
// expression and that it is not NO INHERIT (CHECK), its referenced table
// and columns, ON DELETE, and ON UPDATE NO ACTION and MATCH SIMPLE
// (foreign key), or its index's whole definition (unique). Expressions are
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
// bytes, $n parameters, backticks and what SQLite reads as a parameter
// ('?', and '@', '#' or ':' before a name's character: SQLite's @a(…)
// takes everything to its ')', quotes included) are refused, strings must be plain
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
// notes from [Executor.Notes]. The SQLite forms are the SQLite dialect's
// (an internal package), which renders the built-in operations; an [Op]
// of the caller's own runs there through its [PlainOp] form, and without
// one fails with [ErrUnsupported] before anything runs.
//
// [Lint] checks PostgreSQL DDL, whatever database the executor runs on.
//
// # Pools
//
// [NewExecutor] takes a [Pool], *sql.DB or *sqlx.DB (a *sql.DB is wrapped
// in sqlx under its driver's registered name, sharing the pool): the
// executor runs statements outside any transaction (a concurrent index
// build), on a connection of its own, and in transactions of its own, so
// it needs a pool, not a transaction. The database is told from the
// pool's driver; a driver of no supported database is refused with an
// error, never taken for PostgreSQL.
package ddl
