package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The hunting summary per day on PostgreSQL (migration 0038): a chunk
// writes its index rows (domain × hour) only, and FoldHuntDays sums a
// whole day of them per domain, day and device behind a watermark, in one
// statement for the fleet, instead of an upsert in every chunk's
// transaction (docs/scale.md "Twelfth round").
//
// hunt_watermark holds w and f (hours, f <= w). An index row is summed in
// hunt_daily exactly when it is direct, in hunt_daily_folded exactly when
// it is not and its hour is before f:
//   - ingest marks a row direct when its hour is before w (a late chunk)
//     and then adds it to hunt_daily in the same statement;
//   - FoldHuntDays moves w forward, waits until every transaction that
//     could still have read the old w has ended, then inserts the sums of
//     the rows that are not direct with an hour in [f, w) into
//     hunt_daily_folded and sets f to that w, in one transaction;
//   - a day-period hunt reads both tables plus the index rows in neither,
//     in one statement (one snapshot).
//
// SQLite keeps the upsert in every chunk (one writer at a time; its
// hunt_index has no direct column).
//
// The same fold, under the same w and wait, makes the day rows of the
// devices' app rollup (migration 0039, docs/scale.md "Thirteenth round"):
// a chunk writes its app rows of hours at or after w into
// roll_app_device_hour only (appDevicePresence), and the fold adds the
// day sums of those of [g, w) to roll_app_device and sets g = w, in the
// transaction that moves f. g is a mark of its own because a console of
// the previous version moves f without folding that table.

// The watermark is the start of the UTC day huntFoldLag ago: a day is
// folded once it has ended and the chunks of its last hours have come in
// (an agent closes a chunk after an hour), so only chunks of devices that
// were offline add to hunt_daily themselves. Folding a whole day at once
// is what saves work: a device's name seen in k hours of a day is one
// hunt_daily row written once, where every hourly chunk upserted it (k
// row versions); a day-period hunt reads at most the last ~26 hours from
// the index instead.
const huntFoldLag = 2 * time.Hour

// huntWatermarkAt is the watermark for the clock at now.
func huntWatermarkAt(now time.Time) int64 { return bucketOf(hourOf(now.Add(-huntFoldLag)), SpanDay) }

// huntFoldWait bounds how long one FoldHuntDays waits for the
// transactions that may have read the old watermark; past it, the fold is
// left to the next call (nothing is lost: the rows wait with it).
const huntFoldWait = time.Minute

// huntDailyAdd is the ON CONFLICT update that adds a row to hunt_daily.
const huntDailyAdd = "records = hunt_daily.records + excluded.records, " +
	"first_hour = CASE WHEN excluded.first_hour < hunt_daily.first_hour THEN excluded.first_hour ELSE hunt_daily.first_hour END, " +
	"last_hour = CASE WHEN excluded.last_hour > hunt_daily.last_hour THEN excluded.last_hour ELSE hunt_daily.last_hour END"

// huntDaySQL is the day (Unix seconds, UTC) of an hour column, as
// bucketOf(hour, SpanDay) computes it.
func huntDaySQL(col string) string { return col + " - ((" + col + " % 86400) + 86400) % 86400" }

// appendHunt writes a chunk's hunting index rows (PostgreSQL) in one
// statement: every row with its direct mark, and the rows before the
// watermark (a late chunk's; normally none) added to hunt_daily too. The
// device and chunk are one value each, not an array of copies.
func (s *Store) appendHunt(ctx context.Context, tx execer, device, chunk string, hunt map[huntKey]int64) error {
	if len(hunt) == 0 {
		return nil
	}
	rdomain, hour, records := make([]string, 0, len(hunt)), make([]int64, 0, len(hunt)), make([]int64, 0, len(hunt))
	for k, n := range hunt {
		rdomain, hour, records = append(rdomain, k.rdomain), append(hour, k.hour), append(records, n)
	}
	// The watermark is read by this statement, after the chunk's first
	// statement gave its transaction an id: FoldHuntDays waits for every
	// transaction with an id when w moved, so a transaction that read the
	// old w has ended before the rows it marked are folded. A missing
	// watermark row makes direct NULL, which the column refuses: the chunk
	// fails loudly rather than leaving its rows out of both tables.
	// hunt_daily's rows are locked in one order (rdomain in byte order,
	// then day), as the fold locks them.
	q := `WITH r AS (SELECT rdomain COLLATE "C" AS rdomain, hour, records FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(rdomain, hour, records)), ` +
		"wm AS (SELECT (SELECT w FROM hunt_watermark) AS w), " +
		"i AS (INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records, direct) SELECT r.rdomain, r.hour, $4::text, $5::text, r.records, r.hour < wm.w FROM r, wm) " +
		"INSERT INTO hunt_daily (rdomain, day, device_id, records, first_hour, last_hour) " +
		"SELECT r.rdomain, " + huntDaySQL("r.hour") + ", $4::text, SUM(r.records), MIN(r.hour), MAX(r.hour) FROM r, wm WHERE r.hour < wm.w " +
		"GROUP BY 1, 2 ORDER BY 1, 2 ON CONFLICT (rdomain, day, device_id) DO UPDATE SET " + huntDailyAdd
	if _, err := tx.ExecContext(ctx, q, rdomain, hour, records, device, chunk); err != nil {
		return fmt.Errorf("store: hunting index: %w", err)
	}
	return nil
}

// HuntFold is what one FoldHuntDays did.
type HuntFold struct {
	// From and To are the hours folded, [From, To); equal when nothing was.
	From, To int64
	// Rows is how many hunt_daily_folded rows the fold made.
	Rows int64
	// AppRows is how many roll_app_device day rows the fold wrote (new
	// or added to) from roll_app_device_hour.
	AppRows int64
	// Waited is how long it waited for the transactions that may have
	// read the old watermark.
	Waited time.Duration
}

// FoldHuntDays moves the hunting watermark to the start of the UTC day
// huntFoldLag before now (huntWatermarkAt) and sums the index rows behind
// it into hunt_daily_folded (PostgreSQL; a no-op on SQLite). Safe to call from every replica at once: the
// watermark row orders them, and a fold finds the hours another one did
// already folded.
func (s *Store) FoldHuntDays(ctx context.Context, now time.Time) (HuntFold, error) {
	if s.dialect != Postgres {
		return HuntFold{}, nil
	}
	// 1. Move w. Transactions that read the old w and have not ended may
	// still mark rows of hours in [old w, new w) as not direct.
	var w int64
	if err := s.w.QueryRowContext(ctx, "UPDATE hunt_watermark SET w = GREATEST(w, $1) RETURNING w", huntWatermarkAt(now)).Scan(&w); err != nil {
		return HuntFold{}, fmt.Errorf("store: fold hunting days: move the watermark: %w", err)
	}
	// 2. Wait for them. A chunk that read the old w took its id (its first
	// statement) before w committed, so before the id this statement's own
	// transaction takes after it: all of them have ended once no id up to
	// that one is running. (Not "xmin >= xmax of a snapshot taken after the
	// move": a snapshot's xmax is the newest ended id + 1, which can be at
	// or below the id of a chunk begun while the move was committing.) A
	// transaction that had no id yet has written nothing, so it reads the
	// new w (appendHunt). Only this database's transactions can write
	// hunt_index: past the cluster-wide xmin, the ones of this database
	// with an id up to that one (sessions, prepared) are looked for by
	// name, so a long write transaction or a forgotten prepared one in
	// another database of the cluster does not hold the fold back for
	// ever. (pg_stat_activity shows backend_xid of the sessions of the
	// console's own role, which writes the chunks.)
	start := time.Now()
	var after int64
	if err := s.w.QueryRowContext(ctx, "SELECT txid_current()").Scan(&after); err != nil {
		return HuntFold{}, fmt.Errorf("store: fold hunting days: %w", err)
	}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var done bool
		if err := s.w.QueryRowContext(ctx, huntFoldWaitSQL, after).Scan(&done); err != nil {
			return HuntFold{}, fmt.Errorf("store: fold hunting days: %w", err)
		}
		if done {
			break
		}
		if time.Since(start) > huntFoldWait {
			return HuntFold{Waited: time.Since(start)}, fmt.Errorf("store: fold hunting days: transactions begun before the watermark moved still run after %s; the fold is tried again on the next pass", huntFoldWait)
		}
		select {
		case <-ctx.Done():
			return HuntFold{}, ctx.Err()
		case <-time.After(wait):
		}
	}
	fold := HuntFold{Waited: time.Since(start)}
	// 3. Fold [f, w) and move f, in one transaction; the row lock orders
	// replicas folding at once. Only up to this call's w: a w another
	// replica moved further since may still have its own wait to do.
	// The app rows of the devices (roll_app_device_hour, migration 0039)
	// are folded from their own mark g up to the same w: a console of the
	// previous version, during an upgrade, moves f without folding them.
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var f, g, cur int64
		if err := tx.QueryRowContext(ctx, "SELECT f, w FROM hunt_watermark FOR UPDATE").Scan(&f, &cur); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, "SELECT g FROM app_hours_watermark FOR UPDATE").Scan(&g); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("app_hours_watermark has no row (migration 0039 makes it; g equals hunt_watermark's f unless consoles of an older version ran beside this one, so restore it with INSERT INTO app_hours_watermark (g) SELECT f FROM hunt_watermark; docs/scale.md \"Thirteenth round\"): %w", err)
			}
			return err
		}
		to := min(w, cur)
		fold.From = min(f, g)
		fold.To = max(fold.From, to)
		if to > f {
			r, err := tx.ExecContext(ctx, huntFoldSQL, huntFoldArgs(f, to)...)
			if err != nil {
				return err
			}
			if fold.Rows, err = r.RowsAffected(); err != nil {
				return err
			}
		}
		if to > g {
			if err := tx.QueryRowContext(ctx, appDeviceFoldSQL, g, to).Scan(&fold.AppRows); err != nil {
				return fmt.Errorf("app rows of the devices: %w", err)
			}
		}
		if to <= f && to <= g {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE hunt_watermark SET f = GREATEST(f, $1)", to); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE app_hours_watermark SET g = GREATEST(g, $1)", to)
		return err
	})
	if err != nil {
		return HuntFold{}, fmt.Errorf("store: fold hunting days: %w", err)
	}
	return fold, nil
}

// huntFoldWaitSQL is true once no transaction of this database with an
// id up to $1 (a txid) is running. age() counts from one point within a
// statement, so an older id has a greater age.
const huntFoldWaitSQL = "SELECT txid_snapshot_xmin(txid_current_snapshot()) > $1::bigint OR (" +
	"NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL " +
	"AND age(a.backend_xid) >= age(($1::bigint % 4294967296)::text::xid)) AND " +
	"NOT EXISTS (SELECT 1 FROM pg_prepared_xacts p WHERE p.database = current_database() " +
	"AND age(p.transaction) >= age(($1::bigint % 4294967296)::text::xid)))"

// huntFoldSQL sums the index rows not direct of the hours [$1, $2) into
// hunt_daily_folded, a row per domain, day and device: plain inserts, in
// the table's index order. The hour numbers $3 and $4 let the planner
// read only those hours' pages through the BRIN index on hour / 3600
// (migration 0038).
var huntFoldSQL = "INSERT INTO hunt_daily_folded (rdomain, day, device_id, records, first_hour, last_hour) " +
	"SELECT rdomain, " + huntDaySQL("hour") + ", device_id, SUM(records), MIN(hour), MAX(hour) FROM hunt_index " +
	"WHERE NOT direct AND hour >= $1 AND hour < $2 AND hour / 3600 >= $3 AND hour / 3600 < $4 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"

func huntFoldArgs(from, to int64) []any { return []any{from, to, from / 3600, (to + 3599) / 3600} }

// appDeviceFoldSQL adds the day sums of the roll_app_device_hour rows of
// the hours [$1, $2) to roll_app_device (span 86400) and sets those days'
// presence_app_device bits, and returns how many day rows it wrote. The
// day rows are locked in the order a chunk locks its own (appDeviceSQL:
// device, then span, bucket, app and domain in byte order), the presence
// rows in (span, block, app, domain, device) order, after every day row
// (the presence rows' source reads the count of d first), so a late
// chunk adding to the same rows waits for the fold or the fold for it,
// never both. A row the fold adds to already holds the direct rows of
// that day (a late chunk's, or an earlier version's): the sums add up.
var appDeviceFoldSQL = func() string {
	var sums []string
	for _, c := range strings.Split(counterCols, ", ") {
		sums = append(sums, "CAST(SUM("+c+") AS BIGINT) AS "+c)
	}
	day := huntDaySQL("bucket")
	return "WITH s AS (SELECT device_id, " + day + " AS day, app_id, domain, " + strings.Join(sums, ", ") + ", MAX(last_hour) AS last_hour " +
		"FROM roll_app_device_hour WHERE bucket >= $1 AND bucket < $2 GROUP BY device_id, " + day + ", app_id, domain), " +
		"d AS (INSERT INTO roll_app_device (span, bucket, app_id, domain, device_id, " + counterCols + ", last_hour) " +
		"SELECT " + fmt.Sprint(SpanDay) + ", day, app_id, domain, device_id, " + counterCols + ", last_hour FROM s " +
		`ORDER BY device_id COLLATE "C", day, app_id COLLATE "C", domain COLLATE "C" ` +
		"ON CONFLICT (span, bucket, app_id, domain, device_id) DO UPDATE SET " + addUpdate("roll_app_device") + " RETURNING 1), " +
		"p AS (INSERT INTO presence_app_device (span, block, app_id, domain, device_id, bits) " +
		"SELECT " + fmt.Sprint(SpanDay) + ", day / 86400 / 32, app_id, domain, device_id, bit_or(CAST(1 AS BIGINT) << CAST(day / 86400 % 32 AS INTEGER)) " +
		"FROM s WHERE (SELECT COUNT(*) FROM d) >= 0 GROUP BY day / 86400 / 32, app_id, domain, device_id ORDER BY 2, 3, 4, 5 " +
		"ON CONFLICT (span, block, app_id, domain, device_id) DO UPDATE SET bits = presence_app_device.bits | excluded.bits " +
		"WHERE presence_app_device.bits | excluded.bits <> presence_app_device.bits RETURNING 1) " +
		"SELECT (SELECT COUNT(*) FROM d) + 0 * (SELECT COUNT(*) FROM p)"
}()
