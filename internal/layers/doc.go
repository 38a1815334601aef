// Package layers holds no code: its test keeps the imports between the
// module's packages as docs/architecture.md draws them, and fails on a
// package that the table there does not list.
package layers
