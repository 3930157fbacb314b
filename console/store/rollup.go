package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Rollup bucket lengths: hours for short periods (kept HourlyRollupKeep),
// UTC days for everything else.
const (
	SpanHour = 3600
	SpanDay  = 86400
	// HourlyRollupKeep is how long hour buckets are kept; longer periods,
	// and periods reaching further back, are answered from day buckets.
	HourlyRollupKeep = 72 * time.Hour
	// MaxHourlyPeriod is the longest period answered at hour precision.
	MaxHourlyPeriod = 48 * time.Hour
)

const counterCols = "transactions, bytes_sent, bytes_received, blocks, warns, bypasses, audits, failures"

func sumCols(prefix string) string {
	var b strings.Builder
	for i, c := range strings.Split(counterCols, ", ") {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "SUM(%s%s)", prefix, c)
	}
	return b.String()
}

func (c *Counters) fields() []any {
	return []any{&c.Transactions, &c.BytesSent, &c.BytesReceived, &c.Blocks, &c.Warns, &c.Bypasses, &c.Audits, &c.Failures}
}

func (c Counters) values() []any {
	return []any{c.Transactions, c.BytesSent, c.BytesReceived, c.Blocks, c.Warns, c.Bypasses, c.Audits, c.Failures}
}

// addUpdate is the ON CONFLICT clause adding the counters of excluded
// to table's row and keeping the latest last_hour.
func addUpdate(table string) string {
	var b strings.Builder
	for _, c := range strings.Split(counterCols, ", ") {
		fmt.Fprintf(&b, "%[1]s = %[2]s.%[1]s + excluded.%[1]s, ", c, table)
	}
	fmt.Fprintf(&b, "last_hour = CASE WHEN excluded.last_hour > %[1]s.last_hour THEN excluded.last_hour ELSE %[1]s.last_hour END", table)
	return b.String()
}

// ReverseDomain turns "www.example.com" into "com.example.www": a domain
// and all its subdomains are then one range of the hunting index.
func ReverseDomain(d string) string {
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(d, ".")), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

type rollKey struct {
	span, bucket int64
	app, domain  string
}

type rollVal struct {
	Counters
	last int64
}

type userRollKey struct {
	rollKey
	user string
}

// presenceBits is how many buckets one presence row covers.
const presenceBits = 32

// presenceOf is the presence row (block) and bit of a bucket.
func presenceOf(span, bucket int64) (block, bit int64) {
	n := bucket / span
	return n / presenceBits, 1 << (n % presenceBits)
}

type presKey struct {
	rollKey
	user string
}

type presUserKey = presKey

type huntDayVal struct{ records, first, last int64 }

type huntKey struct {
	rdomain string
	hour    int64
}

func bucketOf(hour, span int64) int64 { return hour - ((hour%span)+span)%span }

// rollupKey is the app key of the device and user rollups: the app, or
// the domain of traffic no app claims.
func rollupDomain(k TrafficKey) string {
	if k.AppID == "" {
		return k.Domain
	}
	return ""
}

// applyRollups adds a chunk's traffic to the discovery rollups (fleet per
// app × domain, per app × device, per app × user, per device; hour buckets
// for recent hours, day buckets always) and to the hunting index, inside
// the chunk's transaction: a retried chunk is never counted twice here
// either.
//
// It writes the device's own rows (roll_app_device, roll_device,
// presence_app_device, the hunting index) at once and returns the writes of
// the fleet-wide rows (roll_app, roll_app_user, presence_app_user), which
// the caller runs last, just before its commit: every concurrent chunk
// upserts those same rows, and PostgreSQL holds their row locks until the
// commit, so each statement between the first fleet-wide upsert and the
// commit is time during which every other chunk of the fleet waits
// (measured: ~10 of 40 uploads waiting on a lock at any moment, and the
// console at 0.2 cores, when they came first; docs/scale.md).
func (s *Store) applyRollups(ctx context.Context, tx execer, b *ChunkBatch, now time.Time) (fleet func() error, err error) {
	device := b.Meta.DeviceID
	hourFloor := hourOf(now.Add(-HourlyRollupKeep))
	spans := func(hour int64) []int64 {
		if hour >= hourFloor {
			return []int64{SpanHour, SpanDay}
		}
		return []int64{SpanDay}
	}
	app := map[rollKey]*rollVal{}
	dev := map[rollKey]*rollVal{}
	tot := map[rollKey]*rollVal{}
	hunt := map[huntKey]int64{}
	huntDay := map[huntKey]*huntDayVal{}
	presDev := map[presKey]int64{}
	presUser := map[presUserKey]*[2]int64{}
	add := func(m map[rollKey]*rollVal, k rollKey, c *Counters, hour int64) {
		v := m[k]
		if v == nil {
			v = &rollVal{}
			m[k] = v
		}
		v.Add(*c)
		v.last = max(v.last, hour)
	}
	// pendingSpan is the one bucket a fleet-wide row is appended under on
	// PostgreSQL: its hour when hour buckets are kept, its day otherwise;
	// the fold adds an hour row to its day as well (FoldRollups), so a
	// chunk appends half the pending rows it would with both spans.
	pendingSpan := func(hour int64) int64 {
		if hour >= hourFloor {
			return SpanHour
		}
		return SpanDay
	}
	pg := s.dialect == Postgres
	pendApp := map[rollKey]*rollVal{}
	devHour := map[rollKey]*rollVal{} // PostgreSQL's roll_app_device rows, by hour
	pendUsers := map[userRollKey]bool{}
	for k, c := range b.Traffic {
		if pg {
			add(devHour, rollKey{SpanHour, k.Hour, k.AppID, rollupDomain(k)}, c, k.Hour)
			span := pendingSpan(k.Hour)
			add(pendApp, rollKey{span, bucketOf(k.Hour, span), k.AppID, k.Domain}, c, k.Hour)
		}
		for _, span := range spans(k.Hour) {
			bk := bucketOf(k.Hour, span)
			if !pg {
				add(app, rollKey{span, bk, k.AppID, k.Domain}, c, k.Hour)
			}
			if !pg { // PostgreSQL: per hour (devHour), spans in SQL
				add(dev, rollKey{span, bk, k.AppID, rollupDomain(k)}, c, k.Hour)
			}
			add(tot, rollKey{span: span, bucket: bk}, c, k.Hour)
			if !pg { // PostgreSQL sets them with the rows (appDevicePresence)
				pk, bit := presenceOf(span, bk)
				presDev[presKey{rollKey{span, pk, k.AppID, rollupDomain(k)}, ""}] |= bit
			}
		}
		if k.Domain != "" {
			rd := ReverseDomain(k.Domain)
			hunt[huntKey{rd, k.Hour}] += c.Transactions
			if pg { // the day rows come from the index rows (appendHunt)
				continue
			}
			dk := huntKey{rd, bucketOf(k.Hour, SpanDay)}
			v := huntDay[dk]
			if v == nil {
				v = &huntDayVal{first: k.Hour, last: k.Hour}
				huntDay[dk] = v
			}
			v.records += c.Transactions
			v.first, v.last = min(v.first, k.Hour), max(v.last, k.Hour)
		}
	}
	users := map[userRollKey]bool{}
	for _, set := range []map[UserKey]struct{}{b.Users, b.Bypassers} {
		for uk := range set {
			if pg {
				// The fold derives the users' presence bits from these
				// rows too (a user row of a bucket is its presence bit).
				span := pendingSpan(uk.Hour)
				k := userRollKey{rollKey{span, bucketOf(uk.Hour, span), uk.AppID, rollupDomain(uk.TrafficKey)}, uk.User}
				if _, bypassed := b.Bypassers[uk]; bypassed {
					pendUsers[k] = true
				} else if !pendUsers[k] {
					pendUsers[k] = false
				}
				continue
			}
			for _, span := range spans(uk.Hour) {
				bk := bucketOf(uk.Hour, span)
				k := userRollKey{rollKey{span, bk, uk.AppID, rollupDomain(uk.TrafficKey)}, uk.User}
				_, bypassed := b.Bypassers[uk]
				if bypassed {
					users[k] = true
				} else if !users[k] {
					users[k] = false
				}
				pk, bit := presenceOf(span, bk)
				pu := presUserKey{rollKey{span, pk, uk.AppID, rollupDomain(uk.TrafficKey)}, uk.User}
				v := presUser[pu]
				if v == nil {
					v = &[2]int64{}
					presUser[pu] = v
				}
				v[0] |= bit
				if bypassed {
					v[1] |= bit
				}
			}
		}
	}
	type rollTableOf struct {
		name string
		m    map[rollKey]*rollVal
	}
	rollTable := func(t rollTableOf) error {
		var cols, conflict string
		switch t.name {
		case "roll_app":
			cols = "span, bucket, app_id, domain"
		case "roll_app_device":
			cols = "span, bucket, app_id, domain, device_id"
		default:
			cols = "span, bucket, device_id"
		}
		conflict = cols
		rows := make([][]any, 0, len(t.m))
		for k, v := range t.m {
			var r []any
			switch t.name {
			case "roll_app":
				r = []any{k.span, k.bucket, k.app, k.domain}
			case "roll_app_device":
				r = []any{k.span, k.bucket, k.app, k.domain, device}
			default:
				r = []any{k.span, k.bucket, device}
			}
			rows = append(rows, append(append(r, v.values()...), v.last))
		}
		if err := s.upsertRows(ctx, tx, "INSERT INTO "+t.name+" ("+cols+", "+counterCols+", last_hour) VALUES ",
			" ON CONFLICT ("+conflict+") DO UPDATE SET "+addUpdate(t.name), rows); err != nil {
			return fmt.Errorf("store: rollup %s: %w", t.name, err)
		}
		return nil
	}
	var rows [][]any
	if pg {
		// The device's presence bits come with its roll_app_device rows
		// (appDevicePresence): no probe of a presence row per app and span.
		if err := s.appDevicePresence(ctx, tx, device, hourFloor, devHour); err != nil {
			return nil, err
		}
		if err := rollTable(rollTableOf{"roll_device", tot}); err != nil {
			return nil, err
		}
	} else {
		for _, t := range []rollTableOf{{"roll_app_device", dev}, {"roll_device", tot}} {
			if err := rollTable(t); err != nil {
				return nil, err
			}
		}
	}
	rows = rows[:0]
	for k, bits := range presDev { // empty on PostgreSQL
		rows = append(rows, []any{k.span, k.bucket, k.app, k.domain, device, bits})
	}
	if err := s.upsertRows(ctx, tx, "INSERT INTO presence_app_device (span, block, app_id, domain, device_id, bits) VALUES ",
		" ON CONFLICT (span, block, app_id, domain, device_id) DO UPDATE SET bits = presence_app_device.bits | excluded.bits "+
			// Most chunks set bits already set: no new row version then.
			"WHERE presence_app_device.bits | excluded.bits <> presence_app_device.bits", rows); err != nil {
		return nil, fmt.Errorf("store: presence: %w", err)
	}
	if pg {
		if err := s.appendHunt(ctx, tx, device, b.Meta.ChunkID, hunt); err != nil {
			return nil, err
		}
	} else {
		rows = rows[:0]
		for k, v := range huntDay {
			rows = append(rows, []any{k.rdomain, k.hour, device, v.records, v.first, v.last})
		}
		if err := s.upsertRows(ctx, tx, "INSERT INTO hunt_daily (rdomain, day, device_id, records, first_hour, last_hour) VALUES ",
			" ON CONFLICT (rdomain, day, device_id) DO UPDATE SET "+huntDailyAdd, rows); err != nil {
			return nil, fmt.Errorf("store: hunting index: %w", err)
		}
		rows = rows[:0]
		for k, n := range hunt {
			rows = append(rows, []any{k.rdomain, k.hour, device, b.Meta.ChunkID, n})
		}
		if err := s.upsertRows(ctx, tx, "INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records) VALUES ",
			" ON CONFLICT (rdomain, hour, device_id, chunk_id) DO UPDATE SET records = hunt_index.records + excluded.records", rows); err != nil {
			return nil, fmt.Errorf("store: hunting index: %w", err)
		}
	}
	if s.dialect == Postgres {
		// Appended, folded later (FoldRollups).
		return func() error { return s.appendPending(ctx, tx, pendApp, pendUsers) }, nil
	}
	// SQLite has one writer at a time anyway: the rows are upserted at
	// once, in one table order for every transaction (with the rows sorted
	// by upsertRows).
	fleet = func() error {
		if err := rollTable(rollTableOf{"roll_app", app}); err != nil {
			return err
		}
		rows := make([][]any, 0, len(users))
		for k, by := range users {
			n := 0
			if by {
				n = 1
			}
			rows = append(rows, []any{k.span, k.bucket, k.app, k.domain, k.user, n})
		}
		if err := s.upsertRows(ctx, tx, "INSERT INTO roll_app_user (span, bucket, app_id, domain, user_name, bypassed) VALUES ",
			" ON CONFLICT (span, bucket, app_id, domain, user_name) DO UPDATE SET bypassed = CASE WHEN excluded.bypassed > roll_app_user.bypassed THEN excluded.bypassed ELSE roll_app_user.bypassed END", rows); err != nil {
			return fmt.Errorf("store: rollup users: %w", err)
		}
		rows = rows[:0]
		for k, v := range presUser {
			rows = append(rows, []any{k.span, k.bucket, k.app, k.domain, k.user, v[0], v[1]})
		}
		if err := s.upsertRows(ctx, tx, "INSERT INTO presence_app_user (span, block, app_id, domain, user_name, bits, bypass_bits) VALUES ",
			" ON CONFLICT (span, block, app_id, domain, user_name) DO UPDATE SET bits = presence_app_user.bits | excluded.bits, bypass_bits = presence_app_user.bypass_bits | excluded.bypass_bits", rows); err != nil {
			return fmt.Errorf("store: presence: %w", err)
		}
		return nil
	}
	return fleet, nil
}

// appDevicePresence writes a chunk's roll_app_device rows (PostgreSQL),
// given per hour (devHour: span SpanHour, bucket the hour), in one
// statement, and sets the presence_app_device bit of each row it
// inserted: a device's presence bit of an app and bucket is set exactly
// when a row of that bucket exists (nothing deletes a row whose presence
// block stays but pruning and retention, which take the buckets no chunk
// writes any more), so a row that was only updated has its bit already. A
// chunk upserted both, and nearly every presence probe found its bit set
// (docs/scale.md "Fifth round").
//
// Where a row goes is decided by the statement, with the hunting
// watermark w it reads (migration 0039, docs/scale.md "Thirteenth
// round"): a row of an hour at or after w, and within the hours kept
// (hourFloor), goes into roll_app_device_hour only, its day left to the
// fold (FoldHuntDays); any other row (a late chunk's) is written directly
// into roll_app_device, in its hour's bucket when within the hours kept
// and in its day's. The chunk's first statement gave its transaction an
// id before this one reads w, so the fold's wait covers it (as
// appendHunt). A missing watermark row writes every row directly, as
// before migration 0039: counted once whatever the fold does (which fails
// without the row).
//
// xmax = 0 tells an inserted row from an updated one: ON CONFLICT DO
// UPDATE locks the existing row first, which leaves the updating
// transaction's id in the new version's xmax. TestAppDevicePresence
// compares the bits with SQLite's, which writes them directly.
//
// Lock order: roll_app_device_hour's rows (this device's only), then
// roll_app_device's in (span, bucket, app, domain) order in byte order
// (as the fold's, which adds the device first, and as upsertRows sorted
// them before), then presence_app_device's (the aggregate reads every
// row inserted above before it yields one).
func (s *Store) appDevicePresence(ctx context.Context, tx execer, device string, hourFloor int64, devHour map[rollKey]*rollVal) error {
	if len(devHour) == 0 {
		return nil
	}
	n := len(devHour)
	hour, app, domain := make([]int64, 0, n), make([]string, 0, n), make([]string, 0, n)
	var counters [8][]int64
	for i := range counters {
		counters[i] = make([]int64, 0, n)
	}
	for k, v := range devHour {
		hour, app, domain = append(hour, k.bucket), append(app, k.app), append(domain, k.domain)
		for i, c := range v.values() {
			counters[i] = append(counters[i], c.(int64))
		}
	}
	args := []any{hour, app, domain}
	for _, c := range counters {
		args = append(args, c)
	}
	args = append(args, device, hourFloor)
	if _, err := tx.ExecContext(ctx, appDeviceSQL, args...); err != nil {
		return fmt.Errorf("store: rollup roll_app_device: %w", err)
	}
	return nil
}

// appDeviceSQL is appDevicePresence's statement: $1–$11 the rows (hour,
// app, domain, the counters), $12 the device, $13 the first hour kept.
var appDeviceSQL = func() string {
	cols := strings.Split(counterCols, ", ")
	var sums []string
	for _, c := range cols {
		sums = append(sums, "CAST(SUM("+c+") AS BIGINT)")
	}
	ph := "$1::bigint[], $2::text[], $3::text[]"
	for i := range cols {
		ph += fmt.Sprintf(", $%d::bigint[]", i+4)
	}
	const byteOrder = `app_id COLLATE "C", domain COLLATE "C"`
	return "WITH r AS (SELECT u.*, COALESCE(u.hour < (SELECT w FROM hunt_watermark), true) OR u.hour < $13 AS direct " +
		"FROM unnest(" + ph + ") AS u(hour, app_id, domain, " + counterCols + ")), " +
		"h AS (INSERT INTO roll_app_device_hour (device_id, bucket, app_id, domain, " + counterCols + ", last_hour) " +
		"SELECT $12::text, hour, app_id, domain, " + counterCols + ", hour FROM r WHERE NOT direct ORDER BY hour, " + byteOrder +
		" ON CONFLICT (device_id, bucket, app_id, domain) DO UPDATE SET " + addUpdate("roll_app_device_hour") +
		" RETURNING CAST(" + fmt.Sprint(SpanHour) + " AS BIGINT) AS span, bucket, app_id, domain, xmax = 0 AS inserted), " +
		"d AS (INSERT INTO roll_app_device (span, bucket, app_id, domain, device_id, " + counterCols + ", last_hour) " +
		"SELECT span, bucket, app_id, domain, $12::text, " + strings.Join(sums, ", ") + ", MAX(last_hour) FROM (" +
		"SELECT CAST(" + fmt.Sprint(SpanHour) + " AS BIGINT) AS span, hour AS bucket, app_id, domain, " + counterCols + ", hour AS last_hour FROM r WHERE direct AND hour >= $13 " +
		"UNION ALL SELECT CAST(" + fmt.Sprint(SpanDay) + " AS BIGINT), " + huntDaySQL("hour") + ", app_id, domain, " + counterCols + ", hour FROM r WHERE direct) x " +
		"GROUP BY span, bucket, app_id, domain ORDER BY span, bucket, " + byteOrder +
		" ON CONFLICT (span, bucket, app_id, domain, device_id) DO UPDATE SET " + addUpdate("roll_app_device") +
		" RETURNING span, bucket, app_id, domain, xmax = 0 AS inserted) " +
		"INSERT INTO presence_app_device (span, block, app_id, domain, device_id, bits) " +
		"SELECT span, bucket / span / 32, app_id, domain, $12::text, bit_or(CAST(1 AS BIGINT) << CAST(bucket / span % 32 AS INTEGER)) " +
		"FROM (SELECT * FROM h UNION ALL SELECT * FROM d) x WHERE inserted GROUP BY span, bucket / span / 32, app_id, domain ORDER BY 1, 2, 3, 4" +
		" ON CONFLICT (span, block, app_id, domain, device_id) DO UPDATE SET bits = presence_app_device.bits | excluded.bits" +
		" WHERE presence_app_device.bits | excluded.bits <> presence_app_device.bits"
}()

// appendPending appends a chunk's share of the fleet-wide rollups to the
// pending tables (PostgreSQL; migration 0036): one row per table for the
// whole chunk, each column an array (element i of every array is one
// pending row), neither boxed into rows nor sorted (a plain insert locks
// no row another transaction writes). A row is in one bucket only, its
// hour's when hour buckets are kept (pendingSpan in applyRollups):
// FoldRollups unnests the arrays, adds each row to its day and derives the
// users' presence bits from the user rows. One row per key (migration
// 0033) was half of a chunk's row writes (docs/scale.md "Ninth round").
func (s *Store) appendPending(ctx context.Context, tx execer, app map[rollKey]*rollVal, users map[userRollKey]bool) error {
	if n := len(app); n > 0 {
		span, bucket, last := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
		appID, domain := make([]string, 0, n), make([]string, 0, n)
		var counters [8][]int64
		for i := range counters {
			counters[i] = make([]int64, 0, n)
		}
		for k, v := range app {
			span, bucket, appID, domain, last = append(span, k.span), append(bucket, k.bucket), append(appID, k.app), append(domain, k.domain), append(last, v.last)
			for i, c := range [8]int64{v.Transactions, v.BytesSent, v.BytesReceived, v.Blocks, v.Warns, v.Bypasses, v.Audits, v.Failures} {
				counters[i] = append(counters[i], c)
			}
		}
		args := []any{span, bucket, appID, domain}
		for _, c := range counters {
			args = append(args, c)
		}
		if err := insertArrayRow(ctx, tx, "roll_app_chunk_pending", "span, bucket, app_id, domain, "+counterCols+", last_hour",
			"bigint[], bigint[], text[], text[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[]", append(args, last)); err != nil {
			return fmt.Errorf("store: rollup roll_app: %w", err)
		}
	}
	if n := len(users); n > 0 {
		span, bucket, bypassed := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
		appID, domain, user := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		for k, by := range users {
			b := int64(0)
			if by {
				b = 1
			}
			span, bucket, appID, domain, user, bypassed = append(span, k.span), append(bucket, k.bucket), append(appID, k.app), append(domain, k.domain), append(user, k.user), append(bypassed, b)
		}
		if err := insertArrayRow(ctx, tx, "roll_app_user_chunk_pending", "span, bucket, app_id, domain, user_name, bypassed",
			"bigint[], bigint[], text[], text[], text[], bigint[]", []any{span, bucket, appID, domain, user, bypassed}); err != nil {
			return fmt.Errorf("store: rollup users: %w", err)
		}
	}
	return nil
}

// insertArrayRow inserts one row whose columns are arrays (PostgreSQL):
// cols names the columns, types their array types in the same order, args
// the arrays ([]int64 or []string, all of one length).
func insertArrayRow(ctx context.Context, tx execer, table, cols, types string, args []any) error {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + cols + ") VALUES (")
	for i, t := range strings.Split(types, ", ") {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d::%s", i+1, t)
	}
	b.WriteString(")")
	_, err := tx.ExecContext(ctx, b.String(), args...)
	return err
}

// foldLock is the PostgreSQL advisory lock that serialises folds across
// replicas. Its own key, not feedLock: a fold need only exclude other
// folds, and sharing the key made every fold wait for a feed publish (and
// the reverse).
const foldLock = 7236843

// FoldRollups moves the pending fleet-wide rollup rows (PostgreSQL) into
// roll_app, roll_app_user and presence_app_user: each statement deletes
// the pending rows it sums, so what it adds is exactly what it removed,
// whatever commits meanwhile; one fold runs at a time (an advisory lock,
// across replicas). The readers of those tables fold first, so a chunk is
// in every view once acknowledged; ingest.Run folds every second so the
// pending tables stay small. A no-op on SQLite.
//
// The chunk tables (migration 0036) hold one row of arrays per chunk,
// element i of each array one row per bucket the chunk touched, its
// hour's when hour buckets are kept: the fold adds it to its hour and to
// its day, and a user row sets the presence bit of its bucket (the same
// facts applyRollups writes on SQLite). The tables of migrations 0033 (the
// same rows, one table row each) and 0030 (both spans, presence apart) are
// still folded for rows a console of an earlier version appends while
// replicas are upgraded.
func (s *Store) FoldRollups(ctx context.Context) error {
	if s.dialect != Postgres {
		return nil
	}
	stmts := foldStatements()
	asked := s.folds.asked()
	var seq uint64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		seq = 0
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", foldLock); err != nil {
			return fmt.Errorf("store: fold rollups: %w", err)
		}
		if s.folds.coveredSince(asked) {
			return nil
		}
		seq = s.folds.begin()
		for _, st := range stmts {
			if _, err := tx.ExecContext(ctx, st.q); err != nil {
				return fmt.Errorf("store: fold %s: %w", st.table, err)
			}
		}
		return nil
	})
	if err == nil && seq != 0 {
		s.folds.committed(seq)
	}
	return err
}

// foldStatement is one statement of a fold: the table it adds to, its text.
type foldStatement struct{ table, q string }

// foldStatements are FoldRollups' statements, in their order.
//
// Each sums the unnested rows by key before it adds the hour rows to
// their days: the rows of many chunks share their keys (a device's apps,
// domains and users recur chunk after chunk), so the day rows are made
// from the sums, not from every unnested row, which doubled the rows the
// big GROUP BY took (its hash spilled to disk: 21 batches and 36 MB of
// temporary files for the roll_app rows of one fold at fleet rate;
// docs/scale.md "Thirteenth round (b)").
//
// The presence_app_user upsert leaves out the rows whose stored row has
// every bit already (most of a fold's): ON CONFLICT DO UPDATE locks the
// row it finds before its WHERE is checked, a WAL record and a dirty page
// per row that changes nothing. Only folds set those bits, one at a time
// (foldLock; a fold of an earlier version during an upgrade only sets
// bits too), so a row found with its bits stays so; pruning and retention
// delete rows of buckets no view reads any more, so a row left out while
// one of them removes it is one it would remove anyway.
func foldStatements() []foldStatement {
	var sums, resums []string
	for c := range strings.SplitSeq(counterCols, ", ") {
		sums = append(sums, "SUM("+c+") AS "+c)
		resums = append(resums, "SUM("+c+")::bigint")
	}
	const appKeys, userKeys = "span, bucket, app_id, domain", "span, bucket, app_id, domain, user_name"
	// No new row version when the stored row already says it (most
	// folds: the user was seen in that bucket before, its bit set).
	userUpdate := "bypassed = excluded.bypassed WHERE excluded.bypassed > roll_app_user.bypassed"
	presUpdate := "bits = presence_app_user.bits | excluded.bits, bypass_bits = presence_app_user.bypass_bits | excluded.bypass_bits " +
		"WHERE presence_app_user.bits | excluded.bits <> presence_app_user.bits OR presence_app_user.bypass_bits | excluded.bypass_bits <> presence_app_user.bypass_bits"
	// day is an hour row's day bucket (bucketOf).
	day := fmt.Sprintf("%d, bucket - ((bucket %% %[1]d) + %[1]d) %% %[1]d", SpanDay)
	// The presence row (block) and bit of a bucket (presenceOf).
	block := fmt.Sprintf("bucket / span / %d", presenceBits)
	bit := fmt.Sprintf("(1::bigint << (bucket / span %% %d)::int)", presenceBits)
	// One statement per target table, the tables in one order (roll_app,
	// roll_app_user, presence_app_user) and each statement's rows in key
	// order: a fold of an earlier version (migration 0030's tables only,
	// another advisory key) running beside this one during an upgrade
	// locks rows in the same order, so the two cannot deadlock. Each
	// statement also takes migration 0030's tables' rows, which such a
	// console appends.
	return []foldStatement{
		// d's sums are numeric (SUM of bigint), summed again exactly.
		{"roll_app", "WITH c AS (DELETE FROM roll_app_chunk_pending RETURNING *), h AS (DELETE FROM roll_app_hour_pending RETURNING *), " +
			"d AS (SELECT " + appKeys + ", " + strings.Join(sums, ", ") + ", MAX(last_hour) AS last_hour FROM (SELECT " + appKeys + ", " + counterCols + ", last_hour FROM h UNION ALL SELECT r.* FROM c, " + unnestAll("c", appKeys+", "+counterCols+", last_hour") + ") x " +
			"GROUP BY " + appKeys + "), " +
			"o AS (DELETE FROM roll_app_pending RETURNING *), " +
			"e AS (SELECT " + appKeys + ", " + counterCols + ", last_hour FROM d UNION ALL SELECT " + day + ", app_id, domain, " + counterCols + ", last_hour FROM d WHERE span = " + fmt.Sprint(SpanHour) +
			" UNION ALL SELECT " + appKeys + ", " + counterCols + ", last_hour FROM o) " +
			"INSERT INTO roll_app (" + appKeys + ", " + counterCols + ", last_hour) SELECT " + appKeys + ", " + strings.Join(resums, ", ") + ", MAX(last_hour) FROM e GROUP BY " + appKeys +
			" ORDER BY " + appKeys + " ON CONFLICT (" + appKeys + ") DO UPDATE SET " + addUpdate("roll_app")},
		// The presence bits come from this version's user rows (g); 0030's
		// user rows came with presence rows of their own (op). The main
		// query reads u first (its count), so roll_app_user's rows are
		// locked before presence_app_user's: an unread data-modifying WITH
		// would run after the main query.
		{"roll_app_user", "WITH c AS (DELETE FROM roll_app_user_chunk_pending RETURNING *), h AS (DELETE FROM roll_app_user_hour_pending RETURNING *), " +
			"d AS (SELECT " + userKeys + ", MAX(bypassed) AS bypassed FROM (SELECT " + userKeys + ", bypassed FROM h UNION ALL SELECT r.* FROM c, " + unnestAll("c", userKeys+", bypassed") + ") x " +
			"GROUP BY " + userKeys + "), " +
			"o AS (DELETE FROM roll_app_user_pending RETURNING *), " +
			"op AS (DELETE FROM presence_app_user_pending RETURNING *), " +
			"e AS (SELECT " + userKeys + ", bypassed FROM d UNION ALL SELECT " + day + ", app_id, domain, user_name, bypassed FROM d WHERE span = " + fmt.Sprint(SpanHour) + "), " +
			"g AS (SELECT " + userKeys + ", MAX(bypassed) AS bypassed FROM e GROUP BY " + userKeys + "), " +
			"ga AS (SELECT " + userKeys + ", MAX(bypassed) AS bypassed FROM (SELECT " + userKeys + ", bypassed FROM g UNION ALL SELECT " + userKeys + ", bypassed FROM o) x GROUP BY " + userKeys + "), " +
			"u AS (INSERT INTO roll_app_user (" + userKeys + ", bypassed) SELECT " + userKeys + ", bypassed FROM ga " +
			"ORDER BY " + userKeys +
			" ON CONFLICT (" + userKeys + ") DO UPDATE SET " + userUpdate + " RETURNING 1), " +
			"p AS (SELECT span, " + block + " AS block, app_id, domain, user_name, " + bit + " AS bits, CASE WHEN bypassed > 0 THEN " + bit + " ELSE 0 END AS bypass_bits FROM g " +
			"UNION ALL SELECT span, block, app_id, domain, user_name, bits, bypass_bits FROM op), " +
			"pb AS (SELECT span, block, app_id, domain, user_name, BIT_OR(bits) AS bits, BIT_OR(bypass_bits) AS bypass_bits FROM p GROUP BY span, block, app_id, domain, user_name) " +
			"INSERT INTO presence_app_user (span, block, app_id, domain, user_name, bits, bypass_bits) " +
			"SELECT span, block, app_id, domain, user_name, bits, bypass_bits FROM pb WHERE (SELECT COUNT(*) FROM u) >= 0 " +
			"AND NOT EXISTS (SELECT 1 FROM presence_app_user s WHERE (s.span, s.block, s.app_id, s.domain, s.user_name) = (pb.span, pb.block, pb.app_id, pb.domain, pb.user_name) " +
			"AND s.bits | pb.bits = s.bits AND s.bypass_bits | pb.bypass_bits = s.bypass_bits) " +
			"ORDER BY span, block, app_id, domain, user_name " +
			"ON CONFLICT (span, block, app_id, domain, user_name) DO UPDATE SET " + presUpdate},
	}
}

// unnestAll is "unnest(t.a, t.b, …) AS r(a, b, …)": the rows of a pending
// row of arrays (migration 0036), element i of each array one row.
func unnestAll(t, cols string) string {
	var args []string
	for c := range strings.SplitSeq(cols, ", ") {
		args = append(args, t+"."+c)
	}
	return "unnest(" + strings.Join(args, ", ") + ") AS r(" + cols + ")"
}

// foldCounter numbers the folds of one process. A fold begins once it
// holds the fold lock, so its DELETE … RETURNING statements (each sees
// what was committed before it started: READ COMMITTED) take every chunk
// acknowledged before then. A caller that asked before a fold began, and
// finds it committed once it holds the lock itself, has nothing of its own
// left to fold. Other replicas' folds are not counted: their callers fold.
type foldCounter struct {
	began, done atomic.Uint64
}

// asked is the count to give coveredSince: read before waiting for the lock.
func (c *foldCounter) asked() uint64 { return c.began.Load() }

// coveredSince says whether a fold that began after asked has committed.
func (c *foldCounter) coveredSince(asked uint64) bool { return c.done.Load() > asked }

// begin numbers a fold that holds the lock.
func (c *foldCounter) begin() uint64 { return c.began.Add(1) }

// committed records that fold seq committed.
func (c *foldCounter) committed(seq uint64) {
	for {
		d := c.done.Load()
		if d >= seq || c.done.CompareAndSwap(d, seq) {
			return
		}
	}
}

// upsertRows writes rows with multi-row statements (prefix, "(?, …), …",
// suffix) of at most maxParams parameters: far fewer round trips than one
// statement per row. Rows must not repeat a key within one call.
func (s *Store) upsertRows(ctx context.Context, tx execer, prefix, suffix string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	// Concurrent chunks of different devices upsert the same fleet-wide
	// rows (roll_app, roll_app_user, presence_*, hunt_daily); PostgreSQL
	// locks them in VALUES order, so rows in map order deadlock two
	// transactions (40P01). One order for every transaction avoids it.
	sortRows(rows)
	if s.dialect == Postgres {
		// One statement of one text through unnest (batchInsert), when the
		// prefix is "INSERT INTO table (columns) VALUES " and the values
		// strings and int64s: PostgreSQL plans a VALUES list of thousands
		// of parameters, and pgx encodes each, at a cost the arrays avoid.
		if table, cols, ok := pgColumns(prefix, rows); ok {
			return s.insertRows(ctx, tx, table, cols, suffix, rows) // sorted above
		}
	}
	const maxParams = 8000
	cols := len(rows[0])
	per := max(1, maxParams/cols)
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	for len(rows) > 0 {
		n := min(per, len(rows))
		var b strings.Builder
		b.WriteString(prefix)
		args := make([]any, 0, n*cols)
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(one)
			args = append(args, r...)
		}
		b.WriteString(suffix)
		if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// pgColumns reads the table and columns of an upsertRows prefix and types
// them from the rows' values (string: text[], int64: bigint[]); ok is
// false for anything else.
func pgColumns(prefix string, rows [][]any) (table string, cols []column, ok bool) {
	rest, found := strings.CutPrefix(prefix, "INSERT INTO ")
	if !found {
		return "", nil, false
	}
	table, rest, found = strings.Cut(rest, " (")
	if !found {
		return "", nil, false
	}
	list, rest, found := strings.Cut(rest, ")")
	if !found || strings.TrimSpace(rest) != "VALUES" {
		return "", nil, false
	}
	names := strings.Split(list, ",")
	if len(names) != len(rows[0]) {
		return "", nil, false
	}
	for i, n := range names {
		var t string
		for _, r := range rows {
			switch r[i].(type) {
			case string:
				if t == "bigint[]" {
					return "", nil, false
				}
				t = "text[]"
			case int64:
				if t == "text[]" {
					return "", nil, false
				}
				t = "bigint[]"
			default:
				return "", nil, false
			}
		}
		cols = append(cols, column{strings.TrimSpace(n), t})
	}
	return table, cols, true
}

// PruneHourlyRollups drops hour buckets older than HourlyRollupKeep (day
// buckets stay; on PostgreSQL an hour row of roll_app_device_hour only
// once folded into its day).
func (s *Store) PruneHourlyRollups(ctx context.Context, now time.Time) (int64, error) {
	if err := s.FoldRollups(ctx); err != nil { // what it drops must not come back
		return 0, err
	}
	cut := hourOf(now.Add(-HourlyRollupKeep))
	var total int64
	for _, t := range []string{"roll_app", "roll_app_device", "roll_app_user", "roll_device", "presence_app_device", "presence_app_user"} {
		col, v := "bucket", "?"
		arg := cut
		if strings.HasPrefix(t, "presence") {
			col, arg = "block", cut/SpanHour/presenceBits
		}
		if t == "presence_app_device" && s.dialect == Postgres {
			// Not the hour bits of hours not folded yet: the app list
			// counts a day's machines from them until the fold sets the
			// day's (DiscoveredApps), however long the fold fails.
			// COALESCE: PostgreSQL's LEAST skips a NULL, so a missing
			// mark would otherwise prune up to the cut.
			v = fmt.Sprintf("LEAST(?, COALESCE((SELECT g FROM app_hours_watermark), 0) / %d / %d)", SpanHour, presenceBits)
		}
		r, err := s.exec(ctx, "DELETE FROM "+t+" WHERE span = ? AND "+col+" < "+v, SpanHour, arg)
		if err != nil {
			return total, fmt.Errorf("store: prune %s: %w", t, err)
		}
		n, _ := r.RowsAffected()
		total += n
	}
	if s.dialect == Postgres {
		// The hour rows of the devices' apps (migration 0039) go at the
		// same cut, but never before the fold has added them to their
		// day (g): a fold that keeps failing must not lose them, nor a
		// missing mark (LEAST skips a NULL; COALESCE keeps them all).
		r, err := s.exec(ctx, "DELETE FROM roll_app_device_hour WHERE bucket < LEAST(?, COALESCE((SELECT g FROM app_hours_watermark), 0))", cut)
		if err != nil {
			return total, fmt.Errorf("store: prune roll_app_device_hour: %w", err)
		}
		n, _ := r.RowsAffected()
		total += n
	}
	return total, nil
}

// BulkLoad stores chunks' rows and aggregates in one transaction with
// multi-row statements: for loading generated fleets (benchmarks) and
// imports, never for live ingest (no duplicate check: every chunk id must
// be new). Traffic keys must not repeat across batches of one device.
func (s *Store) BulkLoad(ctx context.Context, batches []*ChunkBatch) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var chunks, traffic, users [][]any
		for _, b := range batches {
			m := b.Meta
			chunks = append(chunks, []any{m.DeviceID, m.ChunkID, m.SHA256, m.CompressedBytes, m.Records, ms(m.ReceivedAt), m.Path, b.firstHour()})
			for k, c := range b.Traffic {
				traffic = append(traffic, append([]any{m.DeviceID, k.Hour, k.AppID, k.Domain}, c.values()...))
			}
			for k := range b.Users {
				users = append(users, []any{m.DeviceID, k.Hour, k.AppID, k.Domain, k.User})
			}
		}
		if err := s.upsertRows(ctx, tx, "INSERT INTO chunks ("+chunkCols+", first_hour) VALUES ", "", chunks); err != nil {
			return fmt.Errorf("store: bulk chunks: %w", err)
		}
		if err := s.upsertRows(ctx, tx, "INSERT INTO traffic_hourly (device_id, hour, app_id, domain, "+counterCols+") VALUES ", "", traffic); err != nil {
			return fmt.Errorf("store: bulk traffic: %w", err)
		}
		if err := s.upsertRows(ctx, tx, "INSERT INTO traffic_hourly_users (device_id, hour, app_id, domain, user_name) VALUES ", "", users); err != nil {
			return fmt.Errorf("store: bulk users: %w", err)
		}
		for _, b := range batches {
			fleet, err := s.applyRollups(ctx, tx, b, s.now())
			if err == nil {
				err = fleet()
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// sortRows orders rows by their columns, left to right: the lock order of
// a multi-row upsert.
func sortRows(rows [][]any) {
	slices.SortFunc(rows, func(a, b []any) int {
		for i := range min(len(a), len(b)) {
			if c := compareCell(a[i], b[i]); c != 0 {
				return c
			}
		}
		return len(a) - len(b)
	})
}

func compareCell(a, b any) int {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	case int:
		if y, ok := b.(int); ok {
			return cmp.Compare(x, y)
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}
