package store

// Interim fleet-wide discovery queries for the web UI (issue 19), written
// while part 2's analytics API (issue 18) was built in parallel: the pages
// of console/ui read these through console/ui/interim.go only. When the
// part-2 endpoints land, console/ui switches to them and this file goes.
// Every query reads the hourly aggregates of part 1 (traffic_hourly,
// traffic_hourly_users): nothing here is new schema.

import (
	"context"
	"time"
)

// UIAppTotal is one app (or, with AppID "", the domains no catalog app
// claims) summed over a period across the fleet.
type UIAppTotal struct {
	AppID string
	Counters
	Users, Machines int64
	LastHour        int64 // start of the last hour with traffic, Unix seconds
}

// UIAppTotals sums the fleet's traffic per app over [from, to), device ""
// for every device, else one device.
func (s *Store) UIAppTotals(ctx context.Context, device string, from, to time.Time) ([]UIAppTotal, error) {
	users, err := s.uiDistinct(ctx, "app_id", device, "", from, to)
	if err != nil {
		return nil, err
	}
	q := "SELECT app_id, SUM(transactions), SUM(bytes_sent), SUM(bytes_received), SUM(blocks), SUM(warns), SUM(bypasses), SUM(audits), SUM(failures), " +
		"COUNT(DISTINCT device_id), MAX(hour) FROM traffic_hourly WHERE hour >= ? AND hour < ?"
	args := []any{hourOf(from), hourOf(to)}
	if device != "" {
		q += " AND device_id = ?"
		args = append(args, device)
	}
	q += " GROUP BY app_id"
	list, err := queryAll(ctx, s, func(sc scanner) (UIAppTotal, error) {
		var t UIAppTotal
		c := &t.Counters
		err := sc.Scan(&t.AppID, &c.Transactions, &c.BytesSent, &c.BytesReceived, &c.Blocks, &c.Warns, &c.Bypasses, &c.Audits, &c.Failures, &t.Machines, &t.LastHour)
		return t, err
	}, q, args...)
	for i := range list {
		list[i].Users = users[list[i].AppID]
	}
	return list, err
}

// uiDistinct counts distinct users per key column over [from, to),
// optionally for one device and one app.
func (s *Store) uiDistinct(ctx context.Context, key, device, app string, from, to time.Time) (map[string]int64, error) {
	type kv struct {
		k string
		n int64
	}
	q := "SELECT " + key + ", COUNT(DISTINCT user_name) FROM traffic_hourly_users WHERE hour >= ? AND hour < ?"
	args := []any{hourOf(from), hourOf(to)}
	if device != "" {
		q += " AND device_id = ?"
		args = append(args, device)
	}
	if app != "" {
		q += " AND app_id = ?"
		args = append(args, app)
	}
	list, err := queryAll(ctx, s, func(sc scanner) (kv, error) {
		var v kv
		return v, sc.Scan(&v.k, &v.n)
	}, q+" GROUP BY "+key, args...)
	out := make(map[string]int64, len(list))
	for _, v := range list {
		out[v.k] = v.n
	}
	return out, err
}

// UIPoint is one bucket of a time series.
type UIPoint struct {
	T time.Time
	Counters
}

// UISeries sums traffic per step (an hour or a day) over [from, to), for
// the fleet or one device (device != "") and one app (app != "", "-" for
// the domains no app claims).
func (s *Store) UISeries(ctx context.Context, device, app string, from, to time.Time, step time.Duration) ([]UIPoint, error) {
	st := int64(step / time.Second)
	if st < 3600 {
		st = 3600
	}
	base := hourOf(from)
	q := "SELECT (hour - ?) / ?, SUM(transactions), SUM(bytes_sent), SUM(bytes_received), SUM(blocks), SUM(warns), SUM(bypasses), SUM(audits), SUM(failures) " +
		"FROM traffic_hourly WHERE hour >= ? AND hour < ?"
	args := []any{base, st, base, hourOf(to)}
	if device != "" {
		q += " AND device_id = ?"
		args = append(args, device)
	}
	if app != "" {
		if app == "-" {
			app = ""
		}
		q += " AND app_id = ?"
		args = append(args, app)
	}
	q += " GROUP BY 1 ORDER BY 1"
	return queryAll(ctx, s, func(sc scanner) (UIPoint, error) {
		var p UIPoint
		var b int64
		c := &p.Counters
		err := sc.Scan(&b, &c.Transactions, &c.BytesSent, &c.BytesReceived, &c.Blocks, &c.Warns, &c.Bypasses, &c.Audits, &c.Failures)
		p.T = time.Unix(base+b*st, 0).UTC()
		return p, err
	}, q, args...)
}

// UIAppBreakdown is an app's traffic per device or per domain.
type UIAppBreakdown struct {
	Key string // device id or domain
	Counters
	Users    int64
	LastHour int64
}

// UIAppBy sums one app's traffic per "device_id" or per "domain" over
// [from, to).
func (s *Store) UIAppBy(ctx context.Context, app, by string, from, to time.Time) ([]UIAppBreakdown, error) {
	if by != "device_id" {
		by = "domain"
	}
	users, err := s.uiDistinct(ctx, by, "", app, from, to)
	if err != nil {
		return nil, err
	}
	list, err := queryAll(ctx, s, func(sc scanner) (UIAppBreakdown, error) {
		var t UIAppBreakdown
		c := &t.Counters
		err := sc.Scan(&t.Key, &c.Transactions, &c.BytesSent, &c.BytesReceived, &c.Blocks, &c.Warns, &c.Bypasses, &c.Audits, &c.Failures, &t.LastHour)
		return t, err
	}, "SELECT "+by+", SUM(transactions), SUM(bytes_sent), SUM(bytes_received), SUM(blocks), SUM(warns), SUM(bypasses), SUM(audits), SUM(failures), MAX(hour) "+
		"FROM traffic_hourly WHERE app_id = ? AND hour >= ? AND hour < ? GROUP BY "+by+" ORDER BY SUM(transactions) DESC", app, hourOf(from), hourOf(to))
	for i := range list {
		list[i].Users = users[list[i].Key]
	}
	return list, err
}

// UIAppUser is a user of an app over a period, with the bypasses made in
// the hours (device × domain) the user was seen. The aggregates of part 1
// do not say which user of an hour bypassed, so Bypassed is "was seen in
// an hour with a bypass" until part 2's per-user bypass counts land.
type UIAppUser struct {
	User     string
	Machines int64
	Bypassed bool
}

// UIAppUsers lists an app's users over [from, to).
func (s *Store) UIAppUsers(ctx context.Context, app string, from, to time.Time) ([]UIAppUser, error) {
	return queryAll(ctx, s, func(sc scanner) (UIAppUser, error) {
		var u UIAppUser
		var b int64
		err := sc.Scan(&u.User, &u.Machines, &b)
		u.Bypassed = b > 0
		return u, err
	}, "SELECT u.user_name, COUNT(DISTINCT u.device_id), MAX(CASE WHEN t.bypasses > 0 THEN 1 ELSE 0 END) FROM traffic_hourly_users u "+
		"JOIN traffic_hourly t ON t.device_id = u.device_id AND t.hour = u.hour AND t.app_id = u.app_id AND t.domain = u.domain "+
		"WHERE u.app_id = ? AND u.hour >= ? AND u.hour < ? GROUP BY u.user_name ORDER BY u.user_name", app, hourOf(from), hourOf(to))
}

// UIFleetTotals counts the fleet's distinct users and machines with
// traffic over [from, to).
func (s *Store) UIFleetTotals(ctx context.Context, from, to time.Time) (users, machines int64, err error) {
	if err = s.queryRow(ctx, "SELECT COUNT(DISTINCT user_name) FROM traffic_hourly_users WHERE hour >= ? AND hour < ?", hourOf(from), hourOf(to)).Scan(&users); err != nil {
		return
	}
	err = s.queryRow(ctx, "SELECT COUNT(DISTINCT device_id) FROM traffic_hourly WHERE hour >= ? AND hour < ?", hourOf(from), hourOf(to)).Scan(&machines)
	return
}

// UIDeviceChunks lists a device's raw chunks received in [from, to),
// newest first, at most limit (the machine page's event timeline).
func (s *Store) UIDeviceChunks(ctx context.Context, device string, from, to time.Time, limit int) ([]ChunkMeta, error) {
	return queryAll(ctx, s, scanChunk, "SELECT "+chunkCols+" FROM chunks WHERE device_id = ? AND received_at >= ? AND received_at < ? ORDER BY received_at DESC LIMIT ?",
		device, ms(from), ms(to), limit)
}
