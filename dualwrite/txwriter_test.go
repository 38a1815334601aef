package dualwrite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/dualwrite"
	"github.com/schemashift/schemashift/dualwrite/dualwritetest"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/flags/flagstest"
	"github.com/schemashift/schemashift/internal/dbtest"
)

// usersDB is a database holding the worked example mid-migration: the old
// column full_name and the new given_name/family_name.
func usersDB(t *testing.T, db *sqlx.DB) *sqlx.DB {
	t.Helper()
	db.MustExecContext(t.Context(), `CREATE TABLE users (
		id bigint PRIMARY KEY,
		full_name text,
		given_name text,
		family_name text CHECK (family_name <> 'REJECT'))`)
	return db
}

type name struct {
	ID            int64
	Given, Family string
}

// Upserts of each shape's full representation.
func writeOld(ctx context.Context, q sqlx.ExtContext, n name) error {
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, full_name) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name`, n.ID, n.Given+" "+n.Family)
	return err
}

func writeNew(ctx context.Context, q sqlx.ExtContext, n name) error {
	_, err := q.ExecContext(ctx, `INSERT INTO users (id, given_name, family_name) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name`, n.ID, n.Given, n.Family)
	return err
}

type row struct {
	FullName   *string `db:"full_name"`
	GivenName  *string `db:"given_name"`
	FamilyName *string `db:"family_name"`
}

func rowOf(t *testing.T, db *sqlx.DB, id int64) (row, bool) {
	t.Helper()
	var r row
	err := db.GetContext(t.Context(), &r, `SELECT full_name, given_name, family_name FROM users WHERE id = $1`, id)
	if errors.Is(err, sqlNoRows) {
		return r, false
	}
	require.NoError(t, err)
	return r, true
}

func TestTxWriterFollowsStageTable(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testTxWriterFollowsStageTable)
}

func testTxWriterFollowsStageTable(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	usersDB(t, db)
	for i, stage := range flags.Stages() {
		t.Run(stage.String(), func(t *testing.T) {
			flag, _ := flagstest.Flag(t, migration, stage)
			rec := &dualwritetest.Recorder{}
			w, err := dualwrite.NewTxWriter(db, flag, writeOld, writeNew, dualwrite.WithObserver(rec))
			require.NoError(t, err)
			id := int64(i + 1)
			require.NoError(t, w.Write(t.Context(), name{ID: id, Given: "Ada", Family: "Lovelace"}))

			r, ok := rowOf(t, db, id)
			require.True(t, ok)
			wrote := map[string]bool{"old": r.FullName != nil, "new": r.GivenName != nil}
			for _, origin := range []string{"old", "new"} {
				assert.Equal(t, contains(writeOrder[stage], origin), wrote[origin], "%s written", origin)
			}
			var order []string
			for _, c := range rec.Calls() {
				require.NoError(t, c.Err)
				order = append(order, c.Origin.String())
			}
			assert.Equal(t, writeOrder[stage], order)
		})
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// A dual write whose second write fails leaves neither write committed.
func TestTxWriterSecondWriteFailureCommitsNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testTxWriterSecondWriteFailureCommitsNothing)
}

func testTxWriterSecondWriteFailureCommitsNothing(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	usersDB(t, db)
	for _, stage := range []flags.Stage{flags.DualWrite, flags.Shadow, flags.Live, flags.Rampdown} {
		t.Run(stage.String(), func(t *testing.T) {
			flag, _ := flagstest.Flag(t, migration, stage)
			failingOld := func(ctx context.Context, q sqlx.ExtContext, n name) error {
				if err := writeOld(ctx, q, n); err != nil {
					return err
				}
				return errors.New("old store rejected the write")
			}
			// Before live, new is written second and the CHECK constraint
			// rejects it; from live on, old is second and fails.
			oldWrite, newWrite, family := writeOld, writeNew, "REJECT"
			if stage >= flags.Live {
				oldWrite, family = failingOld, "Hopper-King"
			}
			w, err := dualwrite.NewTxWriter(db, flag, oldWrite, newWrite)
			require.NoError(t, err)

			// A row that exists: the failed write must leave it as it was.
			require.NoError(t, writeOld(t.Context(), db, name{ID: 100 + int64(stage), Given: "Grace", Family: "Hopper"}))
			before, _ := rowOf(t, db, 100+int64(stage))

			err = w.Write(t.Context(), name{ID: 100 + int64(stage), Given: "Grace", Family: family})
			require.Error(t, err)
			require.ErrorIs(t, err, dualwrite.ErrSecondaryWrite)
			after, _ := rowOf(t, db, 100+int64(stage))
			assert.Equal(t, before, after, "the first write was rolled back")

			// A new row: nothing of it is committed.
			err = w.Write(t.Context(), name{ID: 200 + int64(stage), Given: "Alan", Family: family})
			require.ErrorIs(t, err, dualwrite.ErrSecondaryWrite)
			_, exists := rowOf(t, db, 200+int64(stage))
			assert.False(t, exists)
		})
	}
}

func TestTxWriterWriteTxJoinsCallersTransaction(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testTxWriterWriteTxJoinsCallersTransaction)
}

func testTxWriterWriteTxJoinsCallersTransaction(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	usersDB(t, db)
	flag, _ := flagstest.Flag(t, migration, flags.Shadow)
	w, err := dualwrite.NewTxWriter(db, flag, writeOld, writeNew)
	require.NoError(t, err)

	tx, err := db.BeginTxx(t.Context(), nil)
	require.NoError(t, err)
	require.NoError(t, w.WriteTx(t.Context(), tx, name{ID: 1, Given: "Ada", Family: "Lovelace"}))
	require.NoError(t, tx.Rollback())
	_, exists := rowOf(t, db, 1)
	assert.False(t, exists, "the caller's rollback undoes both writes")

	tx, err = db.BeginTxx(t.Context(), nil)
	require.NoError(t, err)
	require.NoError(t, w.WriteTx(t.Context(), tx, name{ID: 1, Given: "Ada", Family: "Lovelace"}))
	require.NoError(t, tx.Commit())
	r, exists := rowOf(t, db, 1)
	require.True(t, exists)
	assert.Equal(t, "Ada Lovelace", *r.FullName)
	assert.Equal(t, "Lovelace", *r.FamilyName)
}

// Writers at different stages (a fleet mid-rollout) race on the same rows;
// every committed row has both shapes from one and the same write.
func TestTxWriterConcurrentDualWrites(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, testTxWriterConcurrentDualWrites)
}

func testTxWriterConcurrentDualWrites(t *testing.T, db *sqlx.DB) {
	t.Parallel()
	usersDB(t, db)
	db.SetMaxOpenConns(16)
	stages := []flags.Stage{flags.DualWrite, flags.Shadow, flags.Live, flags.Rampdown}
	writers := make([]*dualwrite.TxWriter[name], len(stages))
	for i, s := range stages {
		flag, _ := flagstest.Flag(t, migration, s)
		w, err := dualwrite.NewTxWriter(db, flag, writeOld, writeNew)
		require.NoError(t, err)
		writers[i] = w
	}
	const goroutines, writes, rows = 8, 60, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*writes)
	for g := range goroutines {
		wg.Go(func() {
			w := writers[g%len(writers)]
			for i := range writes {
				n := name{ID: int64(i % rows), Given: fmt.Sprintf("g%d", g), Family: fmt.Sprintf("w%d", i)}
				if err := w.Write(context.WithoutCancel(t.Context()), n); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// Each transaction locks one row, with its first write: no deadlock
		// and no error is possible.
		require.NoError(t, err)
	}
	for id := range int64(rows) {
		r, ok := rowOf(t, db, id)
		require.True(t, ok)
		require.NotNil(t, r.GivenName)
		assert.Equal(t, *r.GivenName+" "+*r.FamilyName, *r.FullName, "row %d: both shapes come from one write", id)
	}
}
