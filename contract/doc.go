// Package contract states what schema a build of a service needs and checks
// it against the live catalog.
//
// A [Schema] lists tables with the columns (type and nullability) and
// indexes a build relies on, and the columns that must be gone after a
// contract. [Verify] reads the catalog and returns one [MismatchError]
// listing every unmet requirement, so a service refuses to start against a
// database it does not fit (the rollout startup hook calls it). It reads
// PostgreSQL's catalog or SQLite's, where types compare by affinity. Package
// contracttest proves, in unit tests, that a mixed fleet agrees: it runs a
// scenario under every stage and every pair of adjacent stages.
//
// # Databases
//
// [Verify] takes a [DB]: a pool or a transaction of database/sql or sqlx
// (*sql.DB, *sqlx.DB, *sql.Tx, *sqlx.Tx). Given a transaction, it reads the
// catalog as that transaction sees it, its own uncommitted DDL included.
// The database is told from the handle's driver (a *sql.Tx by a harmless
// probe, see internal/dialects); a driver of no supported database is
// refused with an error, never read as PostgreSQL.
package contract
