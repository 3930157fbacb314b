package store

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A pending row of arrays whose arrays differ in length or hold a NULL
// is refused when appended (migration 0036's checks): unnested, it would
// give NULL keys or counters that roll_app refuses, failing every fold —
// and every view, which folds first — until someone removed it by hand.
func TestPendingRowOfArraysChecked(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		if s.dialect != Postgres {
			return
		}
		ctx := context.Background()
		for _, q := range []string{
			// transactions one element short
			"INSERT INTO roll_app_chunk_pending VALUES ('{3600,3600}','{0,3600}','{a,b}','{d,e}','{1}','{1,1}','{1,1}','{0,0}','{0,0}','{0,0}','{0,0}','{0,0}','{0,3600}')",
			// a NULL domain
			"INSERT INTO roll_app_chunk_pending VALUES ('{3600}','{0}','{a}','{NULL}','{1}','{1}','{1}','{0}','{0}','{0}','{0}','{0}','{0}')",
			// a user without a bypassed flag
			"INSERT INTO roll_app_user_chunk_pending VALUES ('{3600,3600}','{0,0}','{a,a}','{d,d}','{u,v}','{0}')",
			// a NULL user
			"INSERT INTO roll_app_user_chunk_pending VALUES ('{3600}','{0}','{a}','{d}','{NULL}','{0}')",
		} {
			_, err := s.exec(ctx, q)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23514" {
				t.Errorf("%s = %v, want a check violation", q, err)
			}
		}
		// What appendPending writes passes, empty arrays too, and folds.
		for _, q := range []string{
			"INSERT INTO roll_app_chunk_pending VALUES ('{}','{}','{}','{}','{}','{}','{}','{}','{}','{}','{}','{}','{}')",
			"INSERT INTO roll_app_chunk_pending VALUES ('{3600,3600}','{0,3600}','{a,b}','{d,e}','{1,2}','{1,1}','{1,1}','{0,0}','{0,0}','{0,0}','{0,0}','{0,0}','{0,3600}')",
			"INSERT INTO roll_app_user_chunk_pending VALUES ('{3600,3600}','{0,0}','{a,a}','{d,d}','{u,v}','{0,1}')",
		} {
			if _, err := s.exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := s.FoldRollups(ctx); err != nil {
			t.Fatal(err)
		}
		var tx int64
		if err := s.queryRow(ctx, "SELECT SUM(transactions) FROM roll_app WHERE span = ?", SpanDay).Scan(&tx); err != nil || tx != 3 {
			t.Fatalf("folded day transactions = %d, %v; want 3", tx, err)
		}
	})
}
