package ledger_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ledger"
)

// The ledger's functions refuse a nil pool with ErrInvalidArgument instead
// of panicking.
func TestLedgerRefusesBadArguments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	require.ErrorIs(t, ledger.Ensure(ctx, nil), ledger.ErrInvalidArgument)
	_, err := ledger.Get(ctx, nil, "m")
	require.ErrorIs(t, err, ledger.ErrInvalidArgument)
	_, err = ledger.Get(ctx, (*sqlx.DB)(nil), "m")
	require.ErrorIs(t, err, ledger.ErrInvalidArgument)
	_, err = ledger.List(ctx, nil)
	require.ErrorIs(t, err, ledger.ErrInvalidArgument)
	_, err = ledger.Audit(ctx, nil, "m", 10)
	require.ErrorIs(t, err, ledger.ErrInvalidArgument)
}
