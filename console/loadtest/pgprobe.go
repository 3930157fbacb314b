package loadtest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// pgProbe reads what a PostgreSQL server is doing, cheaply enough to run
// every second beside a 100,000 records/s load: one connection, one
// query per sample, reading only the server's statistics views (shared
// memory: no table is scanned).
type pgProbe struct {
	db    *sql.DB
	query string
}

// pgSample is one reading. The counters (checkpoints, buffers, WAL) are
// cumulative since the server started; the rest is the moment's.
type pgSample struct {
	ckptStarted int64  // timed + requested checkpoints
	ckptBuffers int64  // buffers the checkpointer wrote
	ckptLSN     string // of the last completed checkpoint ("" unread)
	walRecords  int64
	walFPI      int64
	walBytes    int64
	// ckptRunning: the checkpointer was writing, flushing or pacing its
	// writes (anything but its idle wait).
	ckptRunning bool
	// Active client backends by wait event class (this probe's own
	// connection left out): running on CPU (no wait event), IO, Lock
	// (heavyweight locks), LWLock (lightweight locks: WAL insertion and
	// write, buffer contents, …), anything else (IPC, Client, Timeout, …).
	cpu, io, lock, lwlock, other int
	vacuums, analyzes            []string // tables being vacuumed / analyzed
	took                         time.Duration
}

// newPGProbe opens one connection to dsn and builds the sample query for
// the server's version: PostgreSQL 17 moved the checkpoint counters from
// pg_stat_bgwriter to pg_stat_checkpointer.
func newPGProbe(ctx context.Context, dsn string) (*pgProbe, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	var version int
	var control bool
	err = db.QueryRowContext(ctx, "SELECT current_setting('server_version_num')::int, "+
		"has_function_privilege('pg_control_checkpoint()', 'execute')").Scan(&version, &control)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("PostgreSQL probe: %w", err)
	}
	if version < 140000 {
		db.Close()
		return nil, fmt.Errorf("PostgreSQL probe: server version %d has no pg_stat_wal (14 or later needed)", version)
	}
	return &pgProbe{db: db, query: pgProbeQuery(version, control)}, nil
}

// pgProbeQuery is the one statement a sample runs.
func pgProbeQuery(version int, control bool) string {
	ckpt := "SELECT checkpoints_timed + checkpoints_req AS started, buffers_checkpoint AS buffers FROM pg_stat_bgwriter"
	if version >= 170000 {
		ckpt = "SELECT num_timed + num_requested AS started, buffers_written AS buffers FROM pg_stat_checkpointer"
	}
	// A completed checkpoint moves the control file's checkpoint location
	// (on every version; skipped timed checkpoints, which the counters
	// above include, do not). Superusers and pg_monitor may read it.
	lsn := "''"
	if control {
		lsn = "(SELECT checkpoint_lsn::text FROM pg_control_checkpoint())"
	}
	tables := func(view string) string {
		return "(SELECT coalesce(string_agg(p.relid::regclass::text, E'\\n' ORDER BY p.pid), '') FROM " + view + " p)"
	}
	return "SELECT c.started, c.buffers, " + lsn + ", w.wal_records, w.wal_fpi, w.wal_bytes::bigint, " +
		"a.ckpt, a.cpu, a.io, a.lock, a.lwlock, a.other, " + tables("pg_stat_progress_vacuum") + ", " + tables("pg_stat_progress_analyze") +
		" FROM (" + ckpt + ") c, pg_stat_wal w, (SELECT " +
		"count(*) FILTER (WHERE backend_type = 'checkpointer' AND wait_event IS DISTINCT FROM 'CheckpointerMain') > 0 AS ckpt, " +
		"count(*) FILTER (WHERE cl AND wait_event_type IS NULL) AS cpu, " +
		"count(*) FILTER (WHERE cl AND wait_event_type = 'IO') AS io, " +
		"count(*) FILTER (WHERE cl AND wait_event_type = 'Lock') AS lock, " +
		"count(*) FILTER (WHERE cl AND wait_event_type = 'LWLock') AS lwlock, " +
		"count(*) FILTER (WHERE cl AND wait_event_type NOT IN ('IO', 'Lock', 'LWLock')) AS other " +
		"FROM (SELECT backend_type, wait_event_type, wait_event, " +
		"backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid() AS cl FROM pg_stat_activity) s) a"
}

// sample runs the query once.
func (p *pgProbe) sample(ctx context.Context) (pgSample, error) {
	var s pgSample
	var vac, an string
	t := time.Now()
	err := p.db.QueryRowContext(ctx, p.query).Scan(&s.ckptStarted, &s.ckptBuffers, &s.ckptLSN, &s.walRecords, &s.walFPI, &s.walBytes,
		&s.ckptRunning, &s.cpu, &s.io, &s.lock, &s.lwlock, &s.other, &vac, &an)
	s.took = time.Since(t)
	if err != nil {
		return s, fmt.Errorf("PostgreSQL probe: %w", err)
	}
	s.vacuums, s.analyzes = splitNames(vac), splitNames(an)
	return s, nil
}

func splitNames(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (p *pgProbe) close() error { return p.db.Close() }
