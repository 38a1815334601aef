// Package common holds the statements of the queriers of package
// internal/dialect ([dialect.LedgerQueries], [dialect.FleetQueries],
// [dialect.RolloutQueries], …) that PostgreSQL and SQLite both accept as
// they are: $n parameters, ON CONFLICT, RETURNING, aggregate FILTER,
// IS DISTINCT FROM, CAST(x AS text), LIMIT.
//
// A dialect embeds these types and overrides what it spells differently,
// writing that statement out whole; a database that accepts none of it
// writes its own, and embeds nothing of this package. The types hold no
// state: their zero values are ready and safe for concurrent use. What a
// type lacks of its querier (the ledger's schema and its row lock and
// compare-and-set, the fleet's heartbeat of a migration and its row
// lock, the read-only opening of a milestone check) every dialect writes
// for itself.
package common
