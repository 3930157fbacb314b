package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"time"
)

// walStats is PostgreSQL's write-ahead log and checkpoint counters, read
// from the whole cluster the load test started (nothing else uses it).
type walStats struct {
	records, fpi, bytes int64
	checkpoints         int64 // timed and requested
	requested           int64 // by max_wal_size
	at                  time.Time
}

// readWAL reads the counters: pg_stat_wal (PostgreSQL 14+) and the
// checkpoints from pg_stat_checkpointer (17+) or pg_stat_bgwriter.
func readWAL(ctx context.Context, dsn string) (walStats, error) {
	w := walStats{at: time.Now()}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return w, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.QueryRowContext(ctx, "SELECT wal_records, wal_fpi, wal_bytes::bigint FROM pg_stat_wal").Scan(&w.records, &w.fpi, &w.bytes); err != nil {
		return w, fmt.Errorf("pg_stat_wal: %w", err)
	}
	var timed int64
	err = db.QueryRowContext(ctx, "SELECT num_timed, num_requested FROM pg_stat_checkpointer").Scan(&timed, &w.requested)
	if err != nil {
		err = db.QueryRowContext(ctx, "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter").Scan(&timed, &w.requested)
	}
	if err != nil {
		return w, fmt.Errorf("checkpoint counters: %w", err)
	}
	w.checkpoints = timed + w.requested
	return w, nil
}

// printWAL prints what the write-ahead log took over the uploads: bytes per
// record acknowledged, the share of full-page images (the first change to a
// page after a checkpoint logs the whole 8 KB page) and the checkpoints.
func printWAL(w io.Writer, before, after walStats, records int64) {
	if before.at.IsZero() || after.at.IsZero() {
		return
	}
	bytes := after.bytes - before.bytes
	recs := after.records - before.records
	fpi := after.fpi - before.fpi
	fmt.Fprintf(w, "database WAL over the uploads: %.2f GB (%.1f MB/s", float64(bytes)/1e9, float64(bytes)/1e6/max(after.at.Sub(before.at).Seconds(), 1e-3))
	if records > 0 {
		fmt.Fprintf(w, ", %.0f bytes per record acknowledged", float64(bytes)/float64(records))
	}
	fmt.Fprintf(w, "), %d WAL records, %d full-page images (%.1f %% of WAL records), %d checkpoints (%d requested by max_wal_size)\n",
		recs, fpi, 100*float64(fpi)/max(float64(recs), 1), after.checkpoints-before.checkpoints, after.requested-before.requested)
}
