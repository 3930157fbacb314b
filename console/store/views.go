package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Period is a view's time range, resolved to the rollup bucket that
// answers it: [From, To) on bucket boundaries.
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Span is the bucket length in seconds (SpanHour or SpanDay).
	Span int64 `json:"bucketSeconds"`
}

// PeriodFor resolves [from, to): periods up to MaxHourlyPeriod within the
// hour buckets kept are answered per hour (from rounded down, to rounded
// up to the hour), longer ones per UTC day (rounded out to midnights).
func PeriodFor(from, to, now time.Time) Period {
	if !to.After(from) {
		to = from.Add(time.Hour)
	}
	if to.Sub(from) <= MaxHourlyPeriod && !from.Before(now.Add(-HourlyRollupKeep).Truncate(time.Hour).Add(time.Hour)) {
		return Period{From: floor(from, SpanHour), To: ceil(to, SpanHour), Span: SpanHour}
	}
	return Period{From: floor(from, SpanDay), To: ceil(to, SpanDay), Span: SpanDay}
}

func floor(t time.Time, span int64) time.Time {
	return time.Unix(bucketOf(t.Unix(), span), 0).UTC()
}

func ceil(t time.Time, span int64) time.Time {
	f := floor(t, span)
	if f.Equal(t) {
		return f
	}
	return f.Add(time.Duration(span) * time.Second)
}

func (p Period) args() []any { return []any{p.Span, p.From.Unix(), p.To.Unix()} }

const inPeriod = "span = ? AND bucket >= ? AND bucket < ?"

// keyed names table for a query that selects one device's or one app's
// rows of a period through index (its columns: the key, then span and
// bucket). On SQLite it says so (INDEXED BY): on the WITHOUT ROWID
// rollups (migration 0024) the planner prefers the primary key's
// (span, bucket) range, which reads every device's rows of the period
// (one machine over 30 days on 1,000 devices: 227 ms through the key
// range, 32 ms through its index). Stop 27 kept it off that range by
// writing +span and +bucket, which also kept it from using span and
// bucket in the index, so an app's rows of every bucket were read (a
// popular app's machines and users over 30 days: 59 and 51 ms; 35 and
// 28 ms with INDEXED BY).
func (s *Store) keyed(table, index string) string {
	if s.dialect == SQLite {
		return table + " INDEXED BY " + index
	}
	return table
}

// presenceMask is the SQL expression (and its arguments) of the bits of
// a presence row's block that fall in the period, and the condition
// selecting the period's blocks.
func (p Period) presenceMask() (mask string, maskArgs []any, where string, whereArgs []any) {
	b0, b1 := p.From.Unix()/p.Span, p.To.Unix()/p.Span // buckets [b0, b1)
	blk0, blk1 := b0/presenceBits, (b1-1)/presenceBits
	var sb strings.Builder
	sb.WriteString("(CASE block")
	for blk := blk0; blk <= blk1; blk++ {
		lo := max(b0, blk*presenceBits) - blk*presenceBits
		hi := min(b1, (blk+1)*presenceBits) - blk*presenceBits
		sb.WriteString(" WHEN ? THEN CAST(? AS BIGINT)")
		maskArgs = append(maskArgs, blk, int64(1)<<hi-int64(1)<<lo)
	}
	sb.WriteString(" ELSE 0 END)")
	return sb.String(), maskArgs, "span = ? AND block >= ? AND block <= ?", []any{p.Span, blk0, blk1}
}

// AppStat is one discovered app (or, with AppID "", one domain no app
// claims) summed over a period.
type AppStat struct {
	AppID  string `json:"appId"`
	Domain string `json:"domain,omitempty"`
	Counters
	LastSeen    time.Time `json:"lastSeen"`
	Machines    int64     `json:"machines"`
	Users       int64     `json:"users"`
	BypassUsers int64     `json:"bypassUsers"`
}

type appKey struct{ app, domain string }

// DiscoveredApps sums every app seen in the period (unknown false), or
// every domain no app claims (unknown true), with their machines and
// users.
func (s *Store) DiscoveredApps(ctx context.Context, p Period, unknown bool) ([]AppStat, error) {
	if err := s.FoldRollups(ctx); err != nil {
		return nil, err
	}
	appCond := "app_id <> ''"
	if unknown {
		appCond = "app_id = '' AND domain <> '' AND domain <> '(other)'"
	}
	type cnt struct {
		k    appKey
		a, b int64
	}
	scanCnt := func(sc scanner) (cnt, error) {
		var c cnt
		return c, sc.Scan(&c.k.app, &c.k.domain, &c.a, &c.b)
	}
	var sums []AppStat
	var machines, users []cnt
	// Distinct machines and users from the presence bitmaps: one row per
	// app × device (user) × block of 32 buckets.
	mask, margs, where, wargs := p.presenceMask()
	err := together(ctx, func(ctx context.Context) (err error) {
		// The fleet rollup is per app × domain: a catalog app's domains
		// are summed under the app.
		sums, err = queryAll(ctx, s, func(sc scanner) (AppStat, error) {
			var a AppStat
			var last int64
			err := sc.Scan(append([]any{&a.AppID, &a.Domain}, append(a.Counters.fields(), &last)...)...)
			a.LastSeen = time.Unix(last, 0).UTC()
			return a, err
		}, "SELECT app_id, CASE WHEN app_id = '' THEN domain ELSE '' END, "+sumCols("")+", MAX(last_hour) FROM roll_app WHERE "+inPeriod+" AND "+appCond+
			" GROUP BY app_id, CASE WHEN app_id = '' THEN domain ELSE '' END", p.args()...)
		return err
	}, func(ctx context.Context) (err error) {
		args := append(append([]any{}, wargs...), margs...)
		q := "SELECT app_id, domain, COUNT(DISTINCT device_id), 0 FROM presence_app_device WHERE " + where + " AND (bits & " + mask + ") <> 0 AND " + appCond +
			" GROUP BY app_id, domain"
		if s.dialect == Postgres && p.Span == SpanDay {
			// The days not folded yet have no day bits (migration 0039):
			// their devices are those with an hour bit of an hour at or
			// after g in the period (an hour row sets its bit, and the
			// prune keeps the bits of hours not folded), read in the same
			// statement (one snapshot: a fold commits before it or after
			// it). A row per device, app and 32 hours, not one per hour.
			from, to := p.From.Unix()/SpanHour, p.To.Unix()/SpanHour // hours [from, to)
			lo := "LEAST(32, GREATEST(0, m.lo - block * 32))"
			hi := fmt.Sprintf("LEAST(32, GREATEST(0, %d - block * 32))", to)
			q = "SELECT app_id, domain, COUNT(DISTINCT device_id), 0 FROM (SELECT app_id, domain, device_id FROM presence_app_device WHERE " + where + " AND (bits & " + mask + ") <> 0 AND " + appCond +
				fmt.Sprintf(" UNION ALL SELECT app_id, domain, device_id FROM presence_app_device, (SELECT GREATEST(g / %d, %d) AS lo FROM app_hours_watermark) m WHERE span = %d AND block >= m.lo / 32 AND block <= %d AND ", SpanHour, from, SpanHour, (to-1)/presenceBits) +
				"(bits & ((CAST(1 AS BIGINT) << CAST(GREATEST(" + hi + ", " + lo + ") AS INTEGER)) - (CAST(1 AS BIGINT) << CAST(" + lo + " AS INTEGER)))) <> 0 AND " + appCond + ") x GROUP BY app_id, domain"
		}
		machines, err = queryAll(ctx, s, scanCnt, q, args...)
		return err
	}, func(ctx context.Context) (err error) {
		args := append(append(append([]any{}, margs...), wargs...), margs...)
		users, err = queryAll(ctx, s, scanCnt, "SELECT app_id, domain, COUNT(DISTINCT user_name), COUNT(DISTINCT CASE WHEN (bypass_bits & "+mask+") <> 0 THEN user_name END) FROM presence_app_user WHERE "+
			where+" AND (bits & "+mask+") <> 0 AND "+appCond+" GROUP BY app_id, domain", args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	byKey := make(map[appKey]*AppStat, len(sums))
	for i := range sums {
		byKey[appKey{sums[i].AppID, sums[i].Domain}] = &sums[i]
	}
	for _, c := range machines {
		if a := byKey[c.k]; a != nil {
			a.Machines = c.a
		}
	}
	for _, c := range users {
		if a := byKey[c.k]; a != nil {
			a.Users, a.BypassUsers = c.a, c.b
		}
	}
	return sums, nil
}

// Bucket is one point of a time series.
type Bucket struct {
	At time.Time `json:"at"`
	Counters
}

// Breakdown is one row of a per-app or per-machine list.
type Breakdown struct {
	Key string `json:"key"`
	Counters
	LastSeen time.Time `json:"lastSeen,omitzero"`
}

// Named is a distinct name with whether it bypassed a Warn.
type Named struct {
	Name     string `json:"name"`
	Bypassed bool   `json:"bypassed"`
}

// AppDetail is one app (or unknown domain) over a period.
type AppDetail struct {
	Total    Counters    `json:"total"`
	Domains  []Breakdown `json:"domains"`
	Machines []Breakdown `json:"machines"`
	Users    []Named     `json:"users"`
	Series   []Bucket    `json:"series"`
}

// App sums one app over a period: its domains, machines, users (with
// whether each bypassed a Warn) and traffic per bucket. For a domain no
// app claims, appID is "" and domain names it.
func (s *Store) App(ctx context.Context, p Period, appID, domain string) (AppDetail, error) {
	var d AppDetail
	if err := s.FoldRollups(ctx); err != nil {
		return d, err
	}
	fleetCond, keyArgs := "app_id = ?", []any{appID}
	keyArgs2 := []any{appID, ""}
	if appID == "" {
		fleetCond, keyArgs = "app_id = '' AND domain = ?", []any{domain}
		keyArgs2 = []any{"", domain}
	}
	args := func(k []any) []any { return append(append([]any{}, k...), p.args()...) }
	err := together(ctx, func(ctx context.Context) (err error) {
		d.Domains, err = queryAll(ctx, s, scanBreakdown, "SELECT domain, "+sumCols("")+", MAX(last_hour) FROM "+s.keyed("roll_app", "roll_app_app")+" WHERE "+fleetCond+" AND "+inPeriod+
			" GROUP BY domain ORDER BY SUM(bytes_sent + bytes_received) DESC, domain", args(keyArgs)...)
		return err
	}, func(ctx context.Context) (err error) {
		d.Series, err = queryAll(ctx, s, scanBucket, "SELECT bucket, "+sumCols("")+" FROM "+s.keyed("roll_app", "roll_app_app")+" WHERE "+fleetCond+" AND "+inPeriod+" GROUP BY bucket ORDER BY bucket", args(keyArgs)...)
		return err
	}, func(ctx context.Context) (err error) {
		q, a := s.appMachinesQuery(), args(keyArgs2)
		if s.dialect == Postgres {
			var src string
			src, a = appDeviceRows(p, "app_id = ? AND domain = ?", keyArgs2)
			q = "SELECT device_id, " + sumCols("") + ", MAX(last_hour) FROM " + src + " GROUP BY device_id ORDER BY SUM(bytes_sent + bytes_received) DESC, device_id"
		}
		d.Machines, err = queryAll(ctx, s, scanBreakdown, q, a...)
		return err
	}, func(ctx context.Context) (err error) {
		d.Users, err = queryAll(ctx, s, func(sc scanner) (Named, error) {
			var n Named
			var b int
			err := sc.Scan(&n.Name, &b)
			n.Bypassed = b != 0
			return n, err
		}, s.appUsersQuery(), args(keyArgs2)...)
		return err
	})
	if err != nil {
		return AppDetail{}, err
	}
	for _, b := range d.Domains {
		d.Total.Add(b.Counters)
	}
	return d, nil
}

// appMachinesQuery and appUsersQuery read one app's (or unclaimed
// domain's) machines and users of a period (arguments: app, domain, then
// the period's). On SQLite their index carries every column they read
// (migration 0032), so neither searches the table per row.
func (s *Store) appMachinesQuery() string {
	return "SELECT device_id, " + sumCols("") + ", MAX(last_hour) FROM " + s.keyed("roll_app_device", "roll_app_device_app") + " WHERE app_id = ? AND domain = ? AND " + inPeriod +
		" GROUP BY device_id ORDER BY SUM(bytes_sent + bytes_received) DESC, device_id"
}

// appDeviceRows is the rows of roll_app_device of a period that match
// cond (arguments condArgs) on PostgreSQL, as a FROM item: since
// migration 0039 a device's app rows of the hours not folded yet are in
// roll_app_device_hour (appDevicePresence). An hour period adds that
// table's rows to roll_app_device's hour rows (the late chunks'); a day
// period adds its rows at or after g (not in a day row yet) to
// roll_app_device's day rows. One statement reads both: one snapshot, so
// a fold commits before it or after it, never between the two.
func appDeviceRows(p Period, cond string, condArgs []any) (string, []any) {
	unfolded := ""
	if p.Span == SpanDay {
		// "+ 0": not a bound of an index range. As one, the planner
		// guesses it narrow (an unknown value) and reads every app's rows
		// of the hours since g through the bucket index for one app's
		// machines, where the app index reads that app's rows only
		// (TestAppDeviceHoursPlans).
		unfolded = " AND bucket + 0 >= (SELECT g FROM app_hours_watermark)"
	}
	cols := "app_id, domain, device_id, " + counterCols + ", last_hour"
	src := "(SELECT " + cols + " FROM roll_app_device WHERE " + cond + " AND " + inPeriod +
		" UNION ALL SELECT " + cols + " FROM roll_app_device_hour WHERE " + cond + " AND bucket >= ? AND bucket < ?" + unfolded + ") r"
	args := append(append(append(append([]any{}, condArgs...), p.args()...), condArgs...), p.From.Unix(), p.To.Unix())
	return src, args
}

func (s *Store) appUsersQuery() string {
	return "SELECT user_name, MAX(bypassed) FROM " + s.keyed("roll_app_user", "roll_app_user_app") + " WHERE app_id = ? AND domain = ? AND " + inPeriod +
		" GROUP BY user_name ORDER BY user_name"
}

func scanBreakdown(sc scanner) (Breakdown, error) {
	var b Breakdown
	var last int64
	err := sc.Scan(append([]any{&b.Key}, append(b.Counters.fields(), &last)...)...)
	if last != 0 {
		b.LastSeen = time.Unix(last, 0).UTC()
	}
	return b, err
}

func scanBucket(sc scanner) (Bucket, error) {
	var b Bucket
	var at int64
	err := sc.Scan(append([]any{&at}, b.Counters.fields()...)...)
	b.At = time.Unix(at, 0).UTC()
	return b, err
}

// DeviceTotals sums every device's traffic over a period, by device id.
func (s *Store) DeviceTotals(ctx context.Context, p Period) (map[string]Counters, error) {
	list, err := queryAll(ctx, s, scanBreakdown, "SELECT device_id, "+sumCols("")+", MAX(last_hour) FROM roll_device WHERE "+inPeriod+" GROUP BY device_id", p.args()...)
	out := make(map[string]Counters, len(list))
	for _, b := range list {
		out[b.Key] = b.Counters
	}
	return out, err
}

// MachineDetail is one device over a period.
type MachineDetail struct {
	Total  Counters `json:"total"`
	Series []Bucket `json:"series"`
	// Apps: catalog apps by id, and domains no app claims (AppID "").
	Apps []AppStat `json:"apps"`
}

// Machine sums one device over a period: its traffic per bucket and its
// apps.
func (s *Store) Machine(ctx context.Context, p Period, device string) (MachineDetail, error) {
	var d MachineDetail
	args := append([]any{device}, p.args()...)
	var err error
	d.Series, err = queryAll(ctx, s, scanBucket, "SELECT bucket, "+sumCols("")+" FROM "+s.keyed("roll_device", "roll_device_device")+" WHERE device_id = ? AND "+inPeriod+" GROUP BY bucket ORDER BY bucket", args...)
	if err != nil {
		return d, err
	}
	for _, b := range d.Series {
		d.Total.Add(b.Counters)
	}
	q := "SELECT app_id, domain, " + sumCols("") + ", MAX(last_hour) FROM " + s.keyed("roll_app_device", "roll_app_device_device") + " WHERE device_id = ? AND " + inPeriod +
		" GROUP BY app_id, domain ORDER BY SUM(bytes_sent + bytes_received) DESC, app_id, domain"
	if s.dialect == Postgres {
		var src string
		src, args = appDeviceRows(p, "device_id = ?", []any{device})
		q = "SELECT app_id, domain, " + sumCols("") + ", MAX(last_hour) FROM " + src + " GROUP BY app_id, domain ORDER BY SUM(bytes_sent + bytes_received) DESC, app_id, domain"
	}
	d.Apps, err = queryAll(ctx, s, func(sc scanner) (AppStat, error) {
		var a AppStat
		var last int64
		err := sc.Scan(append([]any{&a.AppID, &a.Domain}, append(a.Counters.fields(), &last)...)...)
		a.LastSeen = time.Unix(last, 0).UTC()
		a.Machines = 1
		return a, err
	}, q, args...)
	return d, err
}

// FleetSummary is the whole fleet over a period: its traffic per bucket
// and in total, and how many machines and users it counts.
type FleetSummary struct {
	Total  Counters `json:"total"`
	Series []Bucket `json:"series"`
	// Machines is the devices with traffic in the period.
	Machines int64 `json:"machines"`
	// Users is the distinct users seen with any app (or unclaimed
	// domain); BypassUsers those of them who bypassed a Warn.
	Users       int64 `json:"users"`
	BypassUsers int64 `json:"bypassUsers"`
}

// Fleet sums every device's traffic per bucket of the period and counts
// the machines and the distinct users: machines from the per-device
// rollup, users from the presence bitmaps (a row per app × user × block
// of 32 buckets, not one per bucket).
func (s *Store) Fleet(ctx context.Context, p Period) (FleetSummary, error) {
	var f FleetSummary
	if err := s.FoldRollups(ctx); err != nil { // presence_app_user may have rows pending
		return f, err
	}
	mask, margs, where, wargs := p.presenceMask()
	err := together(ctx, func(ctx context.Context) error {
		series, err := queryAll(ctx, s, scanBucket, "SELECT bucket, "+sumCols("")+" FROM roll_device WHERE "+inPeriod+" GROUP BY bucket ORDER BY bucket", p.args()...)
		f.Series = append([]Bucket{}, series...)
		return err
	}, func(ctx context.Context) error {
		return s.queryRow(ctx, "SELECT COUNT(DISTINCT device_id) FROM roll_device WHERE "+inPeriod, p.args()...).Scan(&f.Machines)
	}, func(ctx context.Context) error {
		args := append(append(append([]any{}, margs...), wargs...), margs...)
		return s.queryRow(ctx, "SELECT COUNT(DISTINCT user_name), COUNT(DISTINCT CASE WHEN (bypass_bits & "+mask+") <> 0 THEN user_name END) FROM presence_app_user WHERE "+
			where+" AND (bits & "+mask+") <> 0", args...).Scan(&f.Users, &f.BypassUsers)
	})
	if err != nil {
		return FleetSummary{}, err
	}
	for _, b := range f.Series {
		f.Total.Add(b.Counters)
	}
	return f, nil
}
