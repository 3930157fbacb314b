package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// huntNamesMax bounds how many distinct names under one hunted domain are
// looked up one by one; a domain with more is matched as a range.
const huntNamesMax = 512

// huntExact is huntCond with each domain expanded to the names the table
// holds for it and its subdomains, found by one index seek per name. The
// index is ordered by (name, time): a condition on one name lets the time
// range narrow the index scan, where a range of names reads every row of
// every subdomain whatever the period. ok is false when no name matches.
func (s *Store) huntExact(ctx context.Context, table string, domains []string) (cond string, args []any, ok bool, err error) {
	var names []any
	var ranges []string
	var rangeArgs []any
	for _, d := range domains {
		r := ReverseDomain(d)
		var one int
		switch err := s.queryRow(ctx, "SELECT 1 FROM "+table+" WHERE rdomain = ? LIMIT 1", r).Scan(&one); {
		case err == nil:
			names = append(names, r)
		case !errors.Is(err, sql.ErrNoRows):
			return "", nil, false, err
		}
		prev, n := r+".", 0
		for {
			var next sql.NullString
			if err := s.queryRow(ctx, "SELECT MIN(rdomain) FROM "+table+" WHERE rdomain > ? AND rdomain < ?", prev, r+"/").Scan(&next); err != nil {
				return "", nil, false, err
			}
			if !next.Valid {
				break
			}
			if n++; n > huntNamesMax {
				ranges = append(ranges, "(h.rdomain > ? AND h.rdomain < ?)")
				rangeArgs = append(rangeArgs, r+".", r+"/")
				break
			}
			names = append(names, next.String)
			prev = next.String
		}
	}
	if len(names) == 0 && len(ranges) == 0 {
		return "", nil, false, nil
	}
	var parts []string
	if len(names) > 0 {
		parts = append(parts, "h.rdomain IN (?"+strings.Repeat(", ?", len(names)-1)+")")
	}
	return "(" + strings.Join(append(parts, ranges...), " OR ") + ")", append(names, rangeArgs...), true, nil
}

// HuntDevice is one device's matches in the hunting index.
type HuntDevice struct {
	DeviceID  string    `json:"deviceId"`
	FirstHour time.Time `json:"firstHour"`
	LastHour  time.Time `json:"lastHour"`
	Records   int64     `json:"records"`
}

// HuntChunk is a raw chunk that holds matching records.
type HuntChunk struct {
	DeviceID  string
	ChunkID   string
	Path      string
	FirstHour int64
}

// Hunt is one hunting request: domains (and their subdomains) looked up
// in the hunting index. The names the index holds under each domain are
// found once per table and request (up to huntNamesMax seeks per domain),
// not again for every page of chunks an events page reads.
type Hunt struct {
	s       *Store
	domains []string
	conds   map[string]huntCond // by table
}

type huntCond struct {
	cond string
	args []any
	ok   bool
}

// NewHunt starts a hunting request for domains.
func (s *Store) NewHunt(domains []string) *Hunt {
	return &Hunt{s: s, domains: domains, conds: map[string]huntCond{}}
}

func (h *Hunt) cond(ctx context.Context, table string) (huntCond, error) {
	if c, ok := h.conds[table]; ok {
		return c, nil
	}
	cond, args, ok, err := h.s.huntExact(ctx, table, h.domains)
	if err != nil {
		return huntCond{}, err
	}
	c := huntCond{cond, args, ok}
	h.conds[table] = c
	return c, nil
}

// HuntDevices is NewHunt(domains).Devices(ctx, p).
func (s *Store) HuntDevices(ctx context.Context, domains []string, p Period) ([]HuntDevice, error) {
	return s.NewHunt(domains).Devices(ctx, p)
}

// huntUnfoldedSQL sums per device the index rows not summed in a day
// table yet (PostgreSQL: not direct, at or after f); %s is the domain
// condition.
const huntUnfoldedSQL = "SELECT h.device_id, MIN(h.hour) AS f, MAX(h.hour) AS l, SUM(h.records) AS n FROM hunt_index h " +
	"WHERE %s AND NOT h.direct AND h.hour >= (SELECT f FROM hunt_watermark) AND h.hour >= ? AND h.hour < ? GROUP BY h.device_id"

// Devices sums the hunting index per device over a period: per day for
// day periods (hunt_daily, and on PostgreSQL the folded days and the index
// rows of the last hours not folded yet: huntfold.go), per hour for hour
// periods.
func (h *Hunt) Devices(ctx context.Context, p Period) ([]HuntDevice, error) {
	type part struct{ table, q string }
	parts := []part{{"hunt_index", "SELECT h.device_id, MIN(h.hour) AS f, MAX(h.hour) AS l, SUM(h.records) AS n FROM hunt_index h WHERE %s AND h.hour >= ? AND h.hour < ? GROUP BY h.device_id"}}
	if p.Span == SpanDay {
		parts = []part{{"hunt_daily", "SELECT h.device_id, MIN(h.first_hour) AS f, MAX(h.last_hour) AS l, SUM(h.records) AS n FROM hunt_daily h WHERE %s AND h.day >= ? AND h.day < ? GROUP BY h.device_id"}}
		if h.s.dialect == Postgres {
			parts = append(parts, part{"hunt_daily_folded", "SELECT h.device_id, MIN(h.first_hour) AS f, MAX(h.last_hour) AS l, SUM(h.records) AS n FROM hunt_daily_folded h WHERE %s AND h.day >= ? AND h.day < ? GROUP BY h.device_id"}, part{"hunt_index", huntUnfoldedSQL})
		}
	}
	var qs []string
	var args []any
	for _, pt := range parts {
		c, err := h.cond(ctx, pt.table)
		if err != nil {
			return nil, err
		}
		if c.ok {
			qs = append(qs, fmt.Sprintf(pt.q, c.cond))
			args = append(append(args, c.args...), p.From.Unix(), p.To.Unix())
		}
	}
	if len(qs) == 0 {
		return nil, nil
	}
	// Each part sums its rows per device on its own index ranges; the few
	// device rows of both are then added up, in one statement (one
	// snapshot: a fold commits before it or after it, not between).
	q := "SELECT u.device_id, MIN(u.f), MAX(u.l), SUM(u.n) FROM (" + strings.Join(qs, " UNION ALL ") + ") u GROUP BY u.device_id ORDER BY SUM(u.n) DESC, u.device_id"
	return queryAll(ctx, h.s, func(sc scanner) (HuntDevice, error) {
		var d HuntDevice
		var f, l int64
		err := sc.Scan(&d.DeviceID, &f, &l, &d.Records)
		d.FirstHour, d.LastHour = time.Unix(f, 0).UTC(), time.Unix(l, 0).UTC()
		return d, err
	}, q, args...)
}

// HuntStart is where a hunt from `from` starts reading the index: no
// earlier than the hour of the oldest record a kept chunk holds (the
// hours before point at no kept chunk).
func (s *Store) HuntStart(ctx context.Context, from time.Time) (time.Time, error) {
	var oldest sql.NullInt64
	if err := s.queryRow(ctx, "SELECT MIN(first_hour) FROM chunks").Scan(&oldest); err != nil {
		return from, err
	}
	if !oldest.Valid {
		return s.now().UTC().Truncate(time.Hour).Add(time.Hour), nil // nothing kept: an empty range
	}
	if kept := time.Unix(oldest.Int64, 0); kept.After(from) {
		from = kept
	}
	return time.Unix(hourOf(from), 0).UTC(), nil
}

// Hunting reads the index forward in windows of hours, from huntWindow
// up to huntWindowMax, doubling while they hold fewer chunks than the
// page needs: the first page reads the first hours with matches, not
// the whole period.
const (
	huntWindow    = 3600
	huntWindowMax = 7 * 86400
)

// HuntChunks is NewHunt(domains).Chunks(ctx, from, to, offset, limit).
func (s *Store) HuntChunks(ctx context.Context, domains []string, from, to time.Time, offset, limit int) ([]HuntChunk, error) {
	return s.NewHunt(domains).Chunks(ctx, from, to, offset, limit)
}

// Chunks lists the raw chunks (still kept) that hold records of the
// hunted domains in [from, to), in order of their first matching hour,
// from offset on.
func (h *Hunt) Chunks(ctx context.Context, from, to time.Time, offset, limit int) ([]HuntChunk, error) {
	c, err := h.cond(ctx, "hunt_index")
	if err != nil || !c.ok || limit <= 0 {
		return nil, err
	}
	s, cond, args := h.s, c.cond, c.args
	q := "SELECT h.device_id, h.chunk_id, c.path, MIN(h.hour) FROM hunt_index h JOIN chunks c ON c.device_id = h.device_id AND c.chunk_id = h.chunk_id " +
		"WHERE " + cond + " AND h.hour >= ? AND h.hour < ? GROUP BY h.device_id, h.chunk_id, c.path ORDER BY MIN(h.hour), h.device_id, h.chunk_id"
	// A chunk's first matching hour is in the first window that lists it:
	// windows taken in order, each in order, and each chunk kept where it
	// is first seen give the order of the whole period.
	seen := map[[2]string]bool{}
	var out []HuntChunk
	end := to.Unix()
	for lo, w := hourOf(from), int64(huntWindow); lo < end && len(out) < limit; {
		hi := min(lo+w, end)
		list, err := queryAll(ctx, s, func(sc scanner) (HuntChunk, error) {
			var c HuntChunk
			return c, sc.Scan(&c.DeviceID, &c.ChunkID, &c.Path, &c.FirstHour)
		}, q, append(append([]any{}, args...), lo, hi)...)
		if err != nil {
			return nil, err
		}
		for _, c := range list {
			k := [2]string{c.DeviceID, c.ChunkID}
			if seen[k] {
				continue
			}
			seen[k] = true
			if offset > 0 {
				offset--
				continue
			}
			if out = append(out, c); len(out) == limit {
				break
			}
		}
		lo = hi
		if len(list) < limit {
			w = min(w*2, huntWindowMax)
		}
	}
	return out, nil
}

// DeviceChunks lists a device's raw chunks received in [from, to+slack)
// (a chunk is received after its records), oldest first, from offset on.
func (s *Store) DeviceChunks(ctx context.Context, device string, from, to time.Time, offset, limit int) ([]ChunkMeta, error) {
	return queryAll(ctx, s, scanChunk, "SELECT "+chunkCols+" FROM chunks WHERE device_id = ? AND received_at >= ? AND received_at < ? ORDER BY received_at, chunk_id LIMIT ? OFFSET ?",
		device, ms(from), ms(to.Add(24*time.Hour)), limit, offset)
}
