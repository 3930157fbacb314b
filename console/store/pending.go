package store

import (
	"context"
	"fmt"
)

// pendingTables are the fleet-wide rollups' pending tables (PostgreSQL,
// migration 0036 and, for consoles of an earlier version, 0033 and 0030),
// emptied by FoldRollups.
var pendingTables = []string{"roll_app_chunk_pending", "roll_app_user_chunk_pending", "roll_app_hour_pending", "roll_app_user_hour_pending", "roll_app_pending", "roll_app_user_pending", "presence_app_user_pending"}

// VacuumPending reclaims the pages of the pending tables' folded rows
// (PostgreSQL; a no-op on SQLite). FoldRollups deletes what it folds, and
// every view folds before it reads, so each view scans the pending tables:
// until their dead rows are vacuumed that scan reads every page they ever
// filled. One fold of a large backlog left 634 MB of dead rows, and the
// views of a 1,000-device fleet took 240–300 ms instead of 50–100 ms.
// Autovacuum comes too late for that (it waits a minute and for 20 % of
// the table dead), so the ingest loop calls this after folds.
// SKIP_LOCKED: a replica already vacuuming them is enough.
func (s *Store) VacuumPending(ctx context.Context) error {
	if s.dialect != Postgres {
		return nil
	}
	q := "VACUUM (SKIP_LOCKED) "
	for i, t := range pendingTables {
		if i > 0 {
			q += ", "
		}
		q += t
	}
	if _, err := s.w.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("store: vacuum the pending rollups: %w", err)
	}
	return nil
}

// pendingPages is how many pages the pending tables take on disk
// (PostgreSQL; 0 on SQLite): what every view's fold scans. Their TOAST
// pages count: a chunk's pending row of arrays (migration 0036) is mostly
// stored out of line, its heap tuple a few pointers.
func (s *Store) pendingPages(ctx context.Context) (int64, error) {
	if s.dialect != Postgres {
		return 0, nil
	}
	var n int64
	err := s.r.QueryRowContext(ctx, "SELECT (COALESCE(SUM(pg_relation_size(c.oid) + COALESCE(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0)), 0) / current_setting('block_size')::bigint)::bigint "+
		"FROM pg_class c WHERE c.relname = ANY($1)", pendingTables).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: size of the pending rollups: %w", err)
	}
	return n, nil
}
