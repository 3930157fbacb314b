// Package store is the console's database: one schema with versioned
// migrations embedded in the binary, run at start, on SQLite
// (modernc.org/sqlite, pure Go, the embedded default) or PostgreSQL
// (github.com/jackc/pgx/v5, production). Both go through database/sql with
// the same SQL: the dialects differ only in placeholders, the auto-increment
// key and the byte-string type, which the Store resolves; one test suite runs
// on both.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite" // registers "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Errors callers branch on with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrChunkConflict: a chunk id the device already sent, with other bytes.
	ErrChunkConflict = errors.New("chunk id already stored with different content")
	// ErrDuplicateChunk: the same chunk again (idempotent retry).
	ErrDuplicateChunk = errors.New("chunk already stored")
)

// Config says which database to open.
type Config struct {
	// DSN is "postgres://…" / "postgresql://…" (or a libpq key=value string
	// starting with "host=") for PostgreSQL, or "sqlite:PATH" / a file path
	// for SQLite.
	DSN string
	// MaxConns bounds the PostgreSQL connections the store opens (0: 16).
	// Every ingest transaction, fold and view holds one while it runs; a
	// database with a connection limit or a pooler in front wants fewer.
	// At 4 instead of 16 on the 2-core load test, PostgreSQL spent 7–10 %
	// less CPU per record but the uploads' p99 rose and some were refused
	// with 503 while waiting (docs/scale.md, eleventh round), so 16 stays
	// the default. SQLite ignores it (one writer, eight readers).
	MaxConns int
	Log      *slog.Logger
	Now      func() time.Time
}

// DefaultMaxConns is Config.MaxConns's default.
const DefaultMaxConns = 16

// Store is an open database with the schema migrated.
type Store struct {
	dialect string
	// w takes writes, r reads. On SQLite w has a single connection: SQLite
	// has one writer at a time, and queueing in Go is fairer and cheaper
	// than SQLITE_BUSY retries; readers run beside it (WAL). On PostgreSQL
	// both are the same pool.
	w, r *sql.DB
	dsn  string // for WatchFeed's own connection
	log  *slog.Logger
	now  func() time.Time
	// folds lets a fold that waited for the fold lock skip when a fold of
	// this process began after it was asked for and committed meanwhile
	// (FoldRollups): a page's views ask at once, and under full ingest
	// each would otherwise fold the seconds of backlog the one before it
	// left.
	folds foldCounter
}

// Open connects and migrates. Close the Store when done.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s := &Store{log: cfg.Log, now: cfg.Now, dsn: strings.TrimSpace(cfg.DSN)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	dsn := strings.TrimSpace(cfg.DSN)
	switch {
	case dsn == "":
		return nil, errors.New("store: empty DSN; give store.dsn (postgres://… or sqlite:PATH)")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"), strings.HasPrefix(dsn, "host="):
		s.dialect = Postgres
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		n := cfg.MaxConns
		if n <= 0 {
			n = DefaultMaxConns
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s.w, s.r = db, db
	default:
		s.dialect = SQLite
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		open := func(n int) (*sql.DB, error) {
			db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
			if err != nil {
				return nil, err
			}
			db.SetMaxOpenConns(n)
			db.SetMaxIdleConns(n)
			return db, nil
		}
		var err error
		if s.w, err = open(1); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		// Eight readers: a page reads its API answers at once and a view
		// its independent queries at once (together); with four, the app
		// drawer's seven queries queued for connections (page p95 390 ms
		// against 247 with eight on 1,000 devices × 30 days).
		if s.r, err = open(8); err != nil {
			s.w.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	if err := s.w.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: cannot reach the %s database: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.dialect == SQLite {
		_ = os.Chmod(path(dsn), 0o600)
	}
	return s, nil
}

func path(dsn string) string {
	p := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

// Dialect is SQLite or Postgres.
func (s *Store) Dialect() string { return s.dialect }

// Close closes the pools.
func (s *Store) Close() error {
	var err error
	if s.w != nil {
		err = s.w.Close()
	}
	if s.r != nil && s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// q rewrites "?" placeholders for PostgreSQL ($1, $2…). Queries in this
// package never contain a literal question mark.
func (s *Store) q(query string) string {
	if s.dialect != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// tx runs f in a write transaction, committed when f returns nil.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.w.ExecContext(ctx, s.q(query), args...)
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.r.QueryContext(ctx, s.q(query), args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.r.QueryRowContext(ctx, s.q(query), args...)
}

func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer conn.Close()
	if s.dialect == Postgres {
		// Replicas starting together migrate one at a time.
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7236841)"); err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7236841)")
	}
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
	}
	rows.Close()
	latest, announced := 0, false
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("store: migration %s has no version number", base)
		}
		latest = max(latest, v)
		if applied[v] {
			continue
		}
		b, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		body := string(b)
		// NNNN_name.sqlite.sql and NNNN_name.postgres.sql are for one
		// dialect: the other records the version with nothing to run.
		if (strings.HasSuffix(base, ".sqlite.sql") && s.dialect != SQLite) || (strings.HasSuffix(base, ".postgres.sql") && s.dialect != Postgres) {
			body = ""
		}
		if s.dialect == Postgres {
			body = strings.NewReplacer("{{ID}}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "{{BLOB}}", "BYTEA", "{{CTEXT}}", `TEXT COLLATE "C"`).Replace(body)
		} else {
			body = strings.NewReplacer("{{ID}}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{{BLOB}}", "BLOB", "{{CTEXT}}", "TEXT").Replace(body)
		}
		if !announced && len(applied) > 0 && strings.TrimSpace(body) != "" {
			// An index rebuilt on a large store takes a while (migration
			// 0032: 14 s on 4.6 GB): say why the console is not up yet.
			s.log.Info("migrating the database before serving; on a large store this can take minutes", "dialect", s.dialect, "from", base)
			announced = true
		}
		began := time.Now()
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, stmt := range splitSQL(body) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("store: migration %s: %w\n%s", base, err, stmt)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"), v, base, ms(s.now())); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("store: migration %s: %w", base, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migration %s: %w", base, err)
		}
		// A new store runs every migration in well under a second: one line
		// each is noise there (and on the offline verbs' stderr); an upgrade
		// says what each step took.
		level := slog.LevelDebug
		if announced {
			level = slog.LevelInfo
		}
		s.log.Log(ctx, level, "database migrated", "dialect", s.dialect, "migration", base, "took", time.Since(began).Round(time.Millisecond))
	}
	for v := range applied {
		if v > latest {
			return fmt.Errorf("store: the database has schema version %d but this netward-console knows only up to %d; run the newer netward-console (downgrades are not supported)", v, latest)
		}
	}
	return nil
}

// splitSQL cuts a migration into statements at semicolons that end a line
// and drops "--" comment lines.
func splitSQL(body string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.SplitSeq(body, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") || t == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// ms is t in Unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// isUnique reports a unique-constraint violation on either database.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint failed") || strings.Contains(m, "SQLSTATE 23505") || strings.Contains(m, "duplicate key value")
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// queryAll runs a read and scans every row with scan.
func queryAll[T any](ctx context.Context, s *Store, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// execOne runs a write that must change a row; none changed is
// ErrNotFound, wrapped with what.
func (s *Store) execOne(ctx context.Context, what, query string, args ...any) error {
	r, err := s.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// together runs a view's independent reads at once and returns the first
// error: each read is one statement on its own pooled connection, so a
// page waits for the slowest read instead of their sum (the app drawer's
// four reads on 1,000 devices × 30 days). SQLite readers run beside one
// another under WAL; PostgreSQL runs each on its own backend.
func together(ctx context.Context, reads ...func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, read := range reads {
		g.Go(func() error { return read(ctx) })
	}
	return g.Wait()
}
