package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// enableStatements creates the pg_stat_statements view in the run's
// database (the server must have loaded the library at start).
func enableStatements(ctx context.Context, dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return fmt.Errorf("pg_stat_statements could not be enabled: %w", err)
	}
	return nil
}

// resetStatements forgets what enrollment and set-up ran, so the figures
// are the uploads'.
func resetStatements(ctx context.Context, dsn string, log *slog.Logger) {
	db, err := sql.Open("pgx", dsn)
	if err == nil {
		defer db.Close()
		_, err = db.ExecContext(ctx, "SELECT pg_stat_statements_reset()")
	}
	if err != nil {
		log.Warn("pg_stat_statements not reset: its figures include the set-up", "err", err)
	}
}

// statementsShown is how many statements printStatements lists.
const statementsShown = 15

// printStatements lists PostgreSQL's statements of the run's database with
// the most execution time since the uploads began (from the reset; the
// check's reads at the end included), or why it cannot.
func printStatements(ctx context.Context, w io.Writer, d startedDB) {
	if !d.statements {
		fmt.Fprintf(w, "pg statements: not available: %s\n", d.statementsOff)
		return
	}
	db, err := sql.Open("pgx", d.dsn)
	if err != nil {
		fmt.Fprintf(w, "pg statements: %v\n", err)
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT calls, total_exec_time, rows, shared_blks_hit + shared_blks_read, wal_bytes, query "+
		"FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "+
		"ORDER BY total_exec_time DESC LIMIT $1", statementsShown)
	if err != nil {
		fmt.Fprintf(w, "pg statements: %v\n", err)
		return
	}
	defer rows.Close()
	fmt.Fprintf(w, "pg statements, most execution time first (pg_stat_statements, over the uploads and the check):\n")
	fmt.Fprintf(w, "  %9s %10s %9s %12s %12s %10s  %s\n", "calls", "total ms", "ms/call", "rows", "blocks", "WAL MB", "statement")
	for rows.Next() {
		var calls, nrows, blocks int64
		var total float64
		var wal sql.NullString
		var q string
		if err := rows.Scan(&calls, &total, &nrows, &blocks, &wal, &q); err != nil {
			fmt.Fprintf(w, "pg statements: %v\n", err)
			return
		}
		var walMB float64
		if wal.Valid {
			fmt.Sscan(wal.String, &walMB)
			walMB /= 1 << 20
		}
		q = strings.Join(strings.Fields(q), " ")
		if len(q) > 140 {
			q = q[:140] + "…"
		}
		fmt.Fprintf(w, "  %9d %10.0f %9.2f %12d %12d %10.1f  %s\n", calls, total, total/float64(max(calls, 1)), nrows, blocks, walMB, q)
	}
	if err := rows.Err(); err != nil {
		fmt.Fprintf(w, "pg statements: %v\n", err)
	}
	printTableWrites(ctx, w, db)
}

// printTableWrites lists the tables with the most row writes since the
// server started (pg_stat_user_tables; enrollment included): how many
// updates were HOT (in place on their page, no new index entries), what
// fillfactor and dropped indexes are for.
func printTableWrites(ctx context.Context, w io.Writer, db *sql.DB) {
	rows, err := db.QueryContext(ctx, "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables "+
		"ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC LIMIT $1", statementsShown)
	if err != nil {
		fmt.Fprintf(w, "pg table writes: %v\n", err)
		return
	}
	defer rows.Close()
	fmt.Fprintf(w, "pg table writes (pg_stat_user_tables, since the server started):\n")
	fmt.Fprintf(w, "  %-28s %12s %12s %8s %12s\n", "table", "inserted", "updated", "HOT", "deleted")
	for rows.Next() {
		var name string
		var ins, upd, hot, del int64
		if err := rows.Scan(&name, &ins, &upd, &hot, &del); err != nil {
			fmt.Fprintf(w, "pg table writes: %v\n", err)
			return
		}
		share := "-"
		if upd > 0 {
			share = fmt.Sprintf("%.0f %%", 100*float64(hot)/float64(upd))
		}
		fmt.Fprintf(w, "  %-28s %12d %12d %8s %12d\n", name, ins, upd, share, del)
	}
}
