package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CompactStats says what one compaction pass did.
type CompactStats struct {
	Days, HourlyRows, DailyRowsDeleted int64
}

// CompactTraffic folds the hourly aggregates of every day that ended
// before cut into daily ones (sums; users kept distinct per day), one day
// per transaction so a pass never holds the database for long, and
// deletes daily aggregates of days before dropBefore (zero: keep them).
// Counted totals never change: a query over whole days reads the same
// sums before and after (TestCompactTrafficKeepsTotals).
func (s *Store) CompactTraffic(ctx context.Context, cut, dropBefore time.Time) (CompactStats, error) {
	var st CompactStats
	if err := s.FoldRollups(ctx); err != nil { // what it drops must not come back
		return st, err
	}
	limit := dayOf(cut) // only whole days before the cut's day
	for ctx.Err() == nil {
		var oldest sql.NullInt64
		if err := s.queryRow(ctx, "SELECT MIN(hour) FROM traffic_hourly WHERE hour < ?", limit).Scan(&oldest); err != nil {
			return st, err
		}
		var oldestAct sql.NullInt64
		if err := s.queryRow(ctx, "SELECT MIN(hour) FROM actions_hourly WHERE hour < ?", limit).Scan(&oldestAct); err != nil {
			return st, err
		}
		if !oldest.Valid && !oldestAct.Valid {
			break
		}
		day := oldest.Int64
		if !oldest.Valid || (oldestAct.Valid && oldestAct.Int64 < day) {
			day = oldestAct.Int64
		}
		day -= ((day % 86400) + 86400) % 86400
		n, err := s.compactDay(ctx, day)
		if err != nil {
			return st, fmt.Errorf("store: compact day %s: %w", time.Unix(day, 0).UTC().Format(time.DateOnly), err)
		}
		st.Days++
		st.HourlyRows += n
	}
	if !dropBefore.IsZero() {
		d := dayOf(dropBefore)
		for _, t := range []string{"traffic_daily", "traffic_daily_users", "actions_daily"} {
			r, err := s.exec(ctx, "DELETE FROM "+t+" WHERE day < ?", d)
			if err != nil {
				return st, err
			}
			n, _ := r.RowsAffected()
			st.DailyRowsDeleted += n
		}
		// The analytics rollups, presence and hunting index (rollup.go) are
		// aggregates of the same traffic: they go by the same retention, or
		// the app pages would show what device traffic no longer does.
		// Presence rows go once their whole 32-bucket block is before d.
		type drop struct {
			table, cond string
			arg         int64
		}
		drops := []drop{
			{"roll_app", "bucket < ?", d}, {"roll_app_device", "bucket < ?", d},
			{"roll_app_user", "bucket < ?", d}, {"roll_device", "bucket < ?", d},
			{"presence_app_device", "span = 86400 AND block < ?", d / SpanDay / presenceBits},
			{"presence_app_user", "span = 86400 AND block < ?", d / SpanDay / presenceBits},
			{"presence_app_device", "span = 3600 AND block < ?", d / SpanHour / presenceBits},
			{"presence_app_user", "span = 3600 AND block < ?", d / SpanHour / presenceBits},
			{"hunt_daily", "day < ?", d}, {"hunt_index", "hour < ?", d},
		}
		if s.dialect == Postgres { // the fold's days (migration 0038)
			drops = append(drops, drop{"hunt_daily_folded", "day < ?", d})
			drops = append(drops, drop{"roll_app_device_hour", "bucket < ?", d}) // migration 0039
		}
		for _, q := range drops {
			r, err := s.exec(ctx, "DELETE FROM "+q.table+" WHERE "+q.cond, q.arg)
			if err != nil {
				return st, fmt.Errorf("store: drop %s past aggregate retention: %w", q.table, err)
			}
			n, _ := r.RowsAffected()
			st.DailyRowsDeleted += n
		}
	}
	return st, ctx.Err()
}

func (s *Store) compactDay(ctx context.Context, day int64) (int64, error) {
	end := day + 86400
	var moved int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		stmts := []string{
			"INSERT INTO traffic_daily (device_id, day, app_id, domain, transactions, bytes_sent, bytes_received, blocks, warns, bypasses, audits, failures) " +
				"SELECT device_id, CAST(? AS BIGINT), app_id, domain, SUM(transactions), SUM(bytes_sent), SUM(bytes_received), SUM(blocks), SUM(warns), SUM(bypasses), SUM(audits), SUM(failures) " +
				"FROM traffic_hourly WHERE hour >= ? AND hour < ? GROUP BY device_id, app_id, domain " +
				"ON CONFLICT (device_id, day, app_id, domain) DO UPDATE SET " +
				"transactions = traffic_daily.transactions + excluded.transactions, bytes_sent = traffic_daily.bytes_sent + excluded.bytes_sent, " +
				"bytes_received = traffic_daily.bytes_received + excluded.bytes_received, blocks = traffic_daily.blocks + excluded.blocks, " +
				"warns = traffic_daily.warns + excluded.warns, bypasses = traffic_daily.bypasses + excluded.bypasses, " +
				"audits = traffic_daily.audits + excluded.audits, failures = traffic_daily.failures + excluded.failures",
			"INSERT INTO traffic_daily_users (device_id, day, app_id, domain, user_name) " +
				"SELECT DISTINCT device_id, CAST(? AS BIGINT), app_id, domain, user_name FROM traffic_hourly_users WHERE hour >= ? AND hour < ? ON CONFLICT DO NOTHING",
			"INSERT INTO actions_daily (device_id, day, action_type, records) " +
				"SELECT device_id, CAST(? AS BIGINT), action_type, SUM(records) FROM actions_hourly WHERE hour >= ? AND hour < ? GROUP BY device_id, action_type " +
				"ON CONFLICT (device_id, day, action_type) DO UPDATE SET records = actions_daily.records + excluded.records",
		}
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, s.q(q), day, day, end); err != nil {
				return err
			}
		}
		for _, t := range []string{"traffic_hourly", "traffic_hourly_users", "actions_hourly"} {
			r, err := tx.ExecContext(ctx, s.q("DELETE FROM "+t+" WHERE hour >= ? AND hour < ?"), day, end)
			if err != nil {
				return err
			}
			n, _ := r.RowsAffected()
			moved += n
		}
		return nil
	})
	return moved, err
}

func dayOf(t time.Time) int64 {
	u := t.Unix()
	return u - ((u%86400)+86400)%86400
}

// TableSizes reports the bytes each table of the aggregates and chunk
// index takes (PostgreSQL: with indexes and TOAST; SQLite: the whole
// database file under "database"), for the sizing figures of
// docs/scale.md.
func (s *Store) TableSizes(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	if s.dialect != Postgres {
		var pages, size int64
		if err := s.queryRow(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			return nil, err
		}
		if err := s.queryRow(ctx, "PRAGMA page_size").Scan(&size); err != nil {
			return nil, err
		}
		out["database"] = pages * size
		return out, nil
	}
	var errs []error
	for _, t := range []string{"chunks", "traffic_hourly", "traffic_hourly_users", "actions_hourly", "traffic_daily", "traffic_daily_users", "actions_daily", "device_users", "device_addresses", "devices"} {
		var n int64
		if err := s.queryRow(ctx, "SELECT pg_total_relation_size('"+t+"')").Scan(&n); err != nil {
			errs = append(errs, err)
			continue
		}
		out[t] = n
	}
	var db int64
	if err := s.queryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&db); err == nil {
		out["database"] = db
	}
	return out, errors.Join(errs...)
}

// AggregateRows counts the rows of the aggregate tables and the chunk
// index (sizing figures).
func (s *Store) AggregateRows(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range []string{"chunks", "traffic_hourly", "traffic_hourly_users", "actions_hourly", "traffic_daily", "traffic_daily_users", "actions_daily", "device_users", "device_addresses", "devices"} {
		var n int64
		if err := s.queryRow(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return out, err
		}
		out[t] = n
	}
	return out, nil
}
