package backfill_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/flags"
	"github.com/schemashift/schemashift/internal/dbtest"
	"github.com/schemashift/schemashift/internal/pgtest"
)

func adversaryMoveCheck(db *sqlx.DB) *backfill.Into {
	given, family := splitExprs(db)
	return &backfill.Into{Table: "user_names", Key: []string{"user_id"}, Columns: []backfill.Assign{
		{Column: "user_id", Expr: "id"}, {Column: "given_name", Expr: given}, {Column: "family_name", Expr: family}}}
}

// Go mode with Check: a dual write at stage dualwrite (old shape first,
// then the new table, one transaction) holds the source row while the
// chunk waits on it. A single locking read would re-read the source row
// after the writer commits (EvalPlanQual) but judge its target row in the
// snapshot from before: the chunk locks first, then reads, so Func is never
// given the row, whatever way it inserts. (PostgreSQL: SQLite serializes
// the two transactions.)
func TestGoMoveIsNeverGivenARowWrittenWhileItWaited(t *testing.T) {
	t.Parallel()
	for _, insert := range []string{"upsert", "plain", "do nothing"} {
		t.Run(insert, func(t *testing.T) {
			t.Parallel()
			db := pgtest.DB(t)
			provenanceTables(t, db, true)
			var mu sync.Mutex
			var passed []int64
			job := backfill.Job{Name: "split", Table: "users", Columns: []string{"full_name"}, Version: "1", Check: adversaryMoveCheck(db),
				Down: downFull,
				Func: func(ctx context.Context, tx *sqlx.Tx, rows []map[string]any) (int64, error) {
					for _, r := range rows {
						id := r["id"].(int64)
						mu.Lock()
						passed = append(passed, id)
						mu.Unlock()
						given, family, _ := strings.Cut(fmt.Sprint(r["full_name"]), " ")
						q := `INSERT INTO user_names VALUES ($1, $2, $3)`
						switch insert {
						case "upsert":
							q += ` ON CONFLICT (user_id) DO UPDATE SET given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name`
						case "do nothing":
							q += ` ON CONFLICT (user_id) DO NOTHING`
						}
						if _, err := tx.ExecContext(ctx, q, id, given, family); err != nil {
							return 0, err
						}
					}
					return int64(len(rows)), nil
				}}
			b := mustNew(t, db, job, backfill.WithChunkSize(1000, 1000, 1000), backfill.WithLockTimeout(10*time.Second))

			tx := db.MustBeginTx(t.Context(), nil)
			tx.MustExecContext(t.Context(), `UPDATE users SET full_name = 'Mary Ann Smith Jones' WHERE id = 500`)
			tx.MustExecContext(t.Context(), `INSERT INTO user_names VALUES (500, 'Mary Ann', 'Smith Jones')`)

			done := runInBackground(t, b)
			waitForLockWait(t, db)
			require.NoError(t, tx.Commit())
			runErr := <-done

			var got string
			require.NoError(t, db.GetContext(t.Context(), &got, `SELECT given_name || '/' || family_name FROM user_names WHERE user_id = 500`))
			mu.Lock()
			defer mu.Unlock()
			assert.NoError(t, runErr, "the backfill must not fail on a row written through the new path")
			assert.False(t, slices.Contains(passed, int64(500)), "Func was given source row 500, whose target row exists")
			assert.Equal(t, "Mary Ann/Smith Jones", got, "the new-path write")
			if runErr == nil {
				rep, err := b.Verify(t.Context(), backfill.VerifyOptions{})
				require.NoError(t, err)
				t.Logf("%s: verify after: passed=%v %s", insert, rep.Passed(), rep.Summary())
			}
		})
	}
}

// The gate to shadow: a verification that started while the job was
// still running (V_old) is held back inside its comparison; the job
// finishes; a legacy writer drifts a row; a verification started after the
// job finished (V_new) finds it and records "failed"; then V_old finishes
// and would record "passed" over V_new's failure, pairing a stale pass with
// V_new's start. Each verification records only its own outcome: V_old's
// is dropped, and the gate stays closed.
func TestSlowStaleVerificationDoesNotRecordOverALaterOne(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	usersTable(t, db, 3000)
	// Everything written through the new path already (consistent).
	db.MustExecContext(ctx, `UPDATE users SET email_lower = lower(email)`)
	db.MustExecContext(ctx, `CREATE TABLE attack_ctl (block boolean NOT NULL)`)
	db.MustExecContext(ctx, `INSERT INTO attack_ctl VALUES (false)`)
	db.MustExecContext(ctx, `CREATE FUNCTION attack_lower(e text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
		BEGIN
			IF (SELECT block FROM attack_ctl) THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF;
			RETURN lower(e);
		END $$`)
	job := backfill.Job{Name: "gate", Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "attack_lower(email)"}}, Derived: true}

	inChunk := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	b := mustNew(t, db, job, backfill.WithChunkSize(5000, 5000, 5000), backfill.WithBeforeCommit(func(int64) {
		once.Do(func() { close(inChunk); <-release })
	}))
	done := runInBackground(t, b)
	<-inChunk // the job is running, its only chunk not committed

	st, err := b.State(ctx)
	require.NoError(t, err)
	require.Equal(t, backfill.Running, st.Status)

	// Hold V_old inside its comparison.
	holder, err := db.Connx(ctx)
	require.NoError(t, err)
	defer holder.Close()
	_, err = holder.ExecContext(ctx, `SELECT pg_advisory_lock(4242)`)
	require.NoError(t, err)
	db.MustExecContext(ctx, `UPDATE attack_ctl SET block = true`)
	oldDone := make(chan backfill.Report, 1)
	oldErr := make(chan error, 1)
	go func() {
		rep, err := b.Verify(context.WithoutCancel(ctx), backfill.VerifyOptions{Parallel: 1})
		oldDone <- rep
		oldErr <- err
	}()
	waitForLockWait(t, db)
	db.MustExecContext(ctx, `UPDATE attack_ctl SET block = false`)

	close(release)
	require.NoError(t, <-done)
	st, err = b.State(ctx)
	require.NoError(t, err)
	require.Equal(t, backfill.Done, st.Status)

	// A legacy writer, behind the adapters' back.
	db.MustExecContext(ctx, `UPDATE users SET email = 'Drifted@Example.COM' WHERE id = 3`)
	repNew, err := b.Verify(ctx, backfill.VerifyOptions{})
	require.NoError(t, err)
	require.False(t, repNew.Passed(), repNew.Summary())
	require.Equal(t, int64(1), repNew.Drifted)

	_, err = holder.ExecContext(ctx, `SELECT pg_advisory_unlock(4242)`)
	require.NoError(t, err)
	repOld := <-oldDone
	require.NoError(t, <-oldErr)
	t.Logf("V_old: %s", repOld.Summary())

	// The gate's own query (rollout/coordinator.go verifiedSinceDone).
	var row struct {
		Verify  string `db:"verify_status"`
		Status  string `db:"status"`
		Current bool   `db:"current"`
	}
	require.NoError(t, db.GetContext(ctx, &row, `SELECT verify_status, status,
		coalesce(verify_started_at >= finished_at, false) AS current FROM schemashift_backfills WHERE job = $1`, "gate"))
	assert.Equal(t, 1, divergent(t, db), "the drifted row is still there")
	gateOpen := row.Verify == "passed" && row.Status == "done" && row.Current
	assert.False(t, gateOpen, "gate open (verify_status=%s status=%s current=%v) after the latest verification failed and the passing one started while the job ran",
		row.Verify, row.Status, row.Current)
}

// A target table whose columns are named like the aliases the
// verification's SQL gives the source side (v1, v2): Down names them.
func TestMoveTargetColumnsNamedLikeInternalAliases(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE users (id bigint PRIMARY KEY, full_name text)`)
		fill(t, db, 300, `INSERT INTO users (id, full_name) SELECT i, 'Ada' || i || ' Lovelace' || i FROM s`)
		db.MustExecContext(ctx, `CREATE TABLE user_names (user_id bigint PRIMARY KEY, v1 text, v2 text)`)
		given, family := splitExprs(db)
		job := backfill.Job{Name: "alias", Table: "users",
			Into: &backfill.Into{Table: "user_names", Key: []string{"user_id"}, Columns: []backfill.Assign{
				{Column: "user_id", Expr: "id"}, {Column: "v1", Expr: given}, {Column: "v2", Expr: family}}},
			Down: []backfill.Assign{{Column: "full_name", Expr: "v1 || ' ' || v2"}}}
		b := mustNew(t, db, job)
		_, err := b.Run(ctx)
		require.NoError(t, err)
		// A new-path write, consistent by Down.
		db.MustExecContext(ctx, `UPDATE users SET full_name = 'Mary Ann Smith' WHERE id = 7`)
		db.MustExecContext(ctx, `UPDATE user_names SET v1 = 'Mary Ann', v2 = 'Smith' WHERE user_id = 7`)
		rep, err := b.Verify(ctx, backfill.VerifyOptions{})
		require.NoError(t, err)
		assert.True(t, rep.Passed(), rep.Summary())
		assert.Equal(t, int64(1), rep.NewPath)
	})
}

// A legitimate new-path write of NULL into every Set column (the new
// shape says "no display name: use the username"; Down maps it back) is
// told from a row no one wrote by Down, and the chunk leaves it NULL.
func TestNewPathWriteOfAllNullIsKeptByDown(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE users (id bigint PRIMARY KEY, username text NOT NULL, nickname text, display_name text)`)
		fill(t, db, 100, `INSERT INTO users (id, username, nickname) SELECT i, 'u' || i, 'Nick' || i FROM s`)
		// New path: clear the display name; the old shape gets the username (Down).
		db.MustExecContext(ctx, `UPDATE users SET display_name = NULL, nickname = username WHERE id = 5`)
		job := backfill.Job{Name: "nulls", Table: "users", Set: []backfill.Assign{{Column: "display_name", Expr: "nickname"}},
			Down: []backfill.Assign{{Column: "nickname", Expr: "coalesce(display_name, username)"}}}
		b := mustNew(t, db, job)
		_, err := b.Run(ctx)
		require.NoError(t, err)
		var got *string
		require.NoError(t, db.GetContext(ctx, &got, `SELECT display_name FROM users WHERE id = 5`))
		assert.Nil(t, got, "the new path wrote NULL")
	})
}

// Many drifted rows and new-path writes across verification spans of
// exactly RepairBatch rows, MaxKeys = 1, with Down, in Set and Into mode.
func TestRepairIsNotBoundedByMaxKeys(t *testing.T) {
	eachSQLMode(t, func(t *testing.T, db *sqlx.DB, c provenanceCase) {
		ctx := t.Context()
		provenanceTables(t, db, c.moved)
		writer := newNewPathWriter(t, db, flags.DualWrite, c.moved)
		for id := int64(995); id < 1010; id++ {
			writer.write(ctx, id, int(id))
		}
		b := mustNew(t, db, c.job(db, true), backfill.WithChunkSize(1000, 1000, 1000))
		_, err := b.Run(ctx)
		require.NoError(t, err)
		// Drift every row from 1 to 3000 except the new-path ones.
		db.MustExecContext(ctx, `UPDATE users SET full_name = 'Legacy' || id || ' X Writer' WHERE id <= 3000 AND NOT (id BETWEEN 995 AND 1009)`)
		rep, err := b.Verify(ctx, backfill.VerifyOptions{ChunkRows: backfill.RepairBatch, MaxKeys: 1, Repair: true})
		require.NoError(t, err)
		assert.Equal(t, int64(2985), rep.Drifted, rep.Summary())
		assert.Equal(t, int64(2985), rep.Repaired, rep.Summary())
		assert.Zero(t, rep.Remaining)
		assert.Len(t, rep.Diverged, 1)
		require.Empty(t, writer.lost(t, db, c.moved))
		rep, err = b.Verify(ctx, backfill.VerifyOptions{ChunkRows: 1000})
		require.NoError(t, err)
		assert.True(t, rep.Passed(), rep.Summary())
	})
}

// repairMove's UPDATE … FROM races a live writer (new table first,
// then the old shape) on a drifted row: the deadlock is retried, and the
// writer's committed write is never overwritten.
func TestRepairMoveKeepsRacingLiveWrite(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	provenanceTables(t, db, true)
	b := mustNew(t, db, provenanceCases()["into"].job(db, true), backfill.WithChunkSize(1000, 1000, 1000), backfill.WithLockTimeout(10*time.Second))
	_, err := b.Run(ctx)
	require.NoError(t, err)
	db.MustExecContext(ctx, `UPDATE users SET full_name = 'Zed Q R' WHERE id = 500`) // drifted

	tx := db.MustBeginTx(ctx, nil)
	tx.MustExecContext(ctx, `UPDATE user_names SET given_name = 'Mary Ann', family_name = 'Smith Jones' WHERE user_id = 500`)
	type res struct {
		rep backfill.Report
		err error
	}
	repDone := make(chan res, 1)
	go func() {
		rep, err := b.Verify(context.WithoutCancel(ctx), backfill.VerifyOptions{Repair: true})
		repDone <- res{rep, err}
	}()
	waitForLockWait(t, db)
	_, werr := tx.ExecContext(ctx, `UPDATE users SET full_name = 'Mary Ann Smith Jones' WHERE id = 500`)
	if werr == nil {
		werr = tx.Commit()
	} else {
		_ = tx.Rollback()
	}
	r := <-repDone
	require.NoError(t, r.err)
	t.Logf("writer: %v; verify: %s", werr, r.rep.Summary())
	var got string
	require.NoError(t, db.GetContext(ctx, &got, `SELECT u.full_name || '|' || n.given_name || '/' || n.family_name FROM users u JOIN user_names n ON n.user_id = u.id WHERE u.id = 500`))
	if werr == nil {
		assert.Equal(t, "Mary Ann Smith Jones|Mary Ann/Smith Jones", got, "the writer's committed write")
	} else {
		assert.Equal(t, "Zed Q R|Zed/Q R", got, "the repair, the writer rolled back")
	}
}

// Composite text keys, a text key with collation-sensitive ordering,
// MaxKeys = 1, repair across many subspans.
func TestRepairCompositeTextKeys(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		t.Parallel()
		ctx := t.Context()
		db.MustExecContext(ctx, `CREATE TABLE users (tenant text, name text, email text NOT NULL, email_lower text, PRIMARY KEY (tenant, name))`)
		fill(t, db, 4500, `INSERT INTO users (tenant, name, email) SELECT CASE WHEN i % 3 = 0 THEN 'a b' WHEN i % 3 = 1 THEN 'A,b' ELSE 'z''' END, 'N ' || i || ' "q"', 'User' || i || '@Example.COM' FROM s`)
		b := mustNew(t, db, emailJob("ck"), backfill.WithChunkSize(700, 700, 700))
		_, err := b.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, 0, divergent(t, db))
		db.MustExecContext(ctx, `UPDATE users SET email = 'X' || email`)
		rep, err := b.Verify(ctx, backfill.VerifyOptions{ChunkRows: 1000, MaxKeys: 1, Repair: true})
		require.NoError(t, err)
		assert.Equal(t, int64(4500), rep.Repaired, rep.Summary())
		assert.Zero(t, rep.Remaining)
		assert.Equal(t, 0, divergent(t, db))
	})
}

// A verification that fails midway (the context is cancelled while it
// compares) must not leave an earlier "passed" in place.
func TestVerifyCancelledMidwayIsNotAPass(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	ctx := t.Context()
	usersTable(t, db, 3000)
	db.MustExecContext(ctx, `CREATE FUNCTION attack_lower2(e text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
		BEGIN
			IF e = 'User7@Example.COM' AND current_setting('attack.block', true) IS DISTINCT FROM 'off' THEN
				PERFORM pg_advisory_xact_lock_shared(4343);
			END IF;
			RETURN lower(e);
		END $$`)
	job := backfill.Job{Name: "mid", Table: "users", Set: []backfill.Assign{{Column: "email_lower", Expr: "attack_lower2(email)"}}, Derived: true}
	// The chunk must not block: it runs before anyone holds the lock.
	b := mustNew(t, db, job)
	_, err := b.Run(ctx)
	require.NoError(t, err)
	rep, err := b.Verify(ctx, backfill.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Passed())

	holder, err := db.Connx(ctx)
	require.NoError(t, err)
	defer holder.Close()
	_, err = holder.ExecContext(ctx, `SELECT pg_advisory_lock(4343)`)
	require.NoError(t, err)
	vctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := b.Verify(vctx, backfill.VerifyOptions{}); errc <- err }()
	waitForLockWait(t, db)
	cancel()
	require.Error(t, <-errc)
	_, err = holder.ExecContext(ctx, `SELECT pg_advisory_unlock(4343)`)
	require.NoError(t, err)
	st, err := b.State(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, "passed", st.Verify)
	assert.False(t, slices.Contains([]string{"passed", "repaired"}, st.Verify), st.Verify)
}
