package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// huntCond matches a domain and its subdomains on the reversed-domain
// index: "com.example" itself, or anything from "com.example." up to
// "com.example/" ('/' follows '.' in byte order), which is exactly the
// names ending in ".example.com" — and not "example-foo.com".
func huntCond(domains []string) (string, []any) {
	var parts []string
	var args []any
	for _, d := range domains {
		r := ReverseDomain(d)
		parts = append(parts, "(h.rdomain = ? OR (h.rdomain > ? AND h.rdomain < ?))")
		args = append(args, r, r+".", r+"/")
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}

// HuntDevice is one device's matches in the hunting index.
type HuntDevice struct {
	DeviceID  string    `json:"deviceId"`
	FirstHour time.Time `json:"firstHour"`
	LastHour  time.Time `json:"lastHour"`
	Records   int64     `json:"records"`
}

// HuntLateUpload is how much older than the oldest kept chunk's receipt
// records are still looked for: an agent offline longer uploads records
// older than that, which hunting passes over once retention has removed
// every chunk received before them.
const HuntLateUpload = 7 * 24 * time.Hour

// HuntChunk is a raw chunk that holds matching records.
type HuntChunk struct {
	DeviceID  string
	ChunkID   string
	Path      string
	FirstHour int64
}

// HuntDevices sums the hunting index per device for domains (and their
// subdomains) over a period: per day for day periods (hunt_daily), per
// hour for hour periods.
func (s *Store) HuntDevices(ctx context.Context, domains []string, p Period) ([]HuntDevice, error) {
	cond, args := huntCond(domains)
	args = append(args, p.From.Unix(), p.To.Unix())
	q := "SELECT h.device_id, MIN(h.hour), MAX(h.hour), SUM(h.records) FROM hunt_index h WHERE " + cond + " AND h.hour >= ? AND h.hour < ?"
	if p.Span == SpanDay {
		q = "SELECT h.device_id, MIN(h.first_hour), MAX(h.last_hour), SUM(h.records) FROM hunt_daily h WHERE " + cond + " AND h.day >= ? AND h.day < ?"
	}
	return queryAll(ctx, s, func(sc scanner) (HuntDevice, error) {
		var d HuntDevice
		var f, l int64
		err := sc.Scan(&d.DeviceID, &f, &l, &d.Records)
		d.FirstHour, d.LastHour = time.Unix(f, 0).UTC(), time.Unix(l, 0).UTC()
		return d, err
	}, q+" GROUP BY h.device_id ORDER BY SUM(h.records) DESC, h.device_id", args...)
}

// HuntStart is where a hunt from `from` starts reading the index: no
// earlier than HuntLateUpload before the oldest kept chunk's receipt (the
// hours before hold no kept records), on an hour boundary.
func (s *Store) HuntStart(ctx context.Context, from time.Time) (time.Time, error) {
	var oldest sql.NullInt64
	if err := s.queryRow(ctx, "SELECT MIN(received_at) FROM chunks").Scan(&oldest); err != nil {
		return from, err
	}
	if !oldest.Valid {
		return s.now().UTC().Truncate(time.Hour).Add(time.Hour), nil // nothing kept: an empty range
	}
	if kept := fromMS(oldest.Int64).Add(-HuntLateUpload); kept.After(from) {
		from = kept
	}
	return time.Unix(hourOf(from), 0).UTC(), nil
}

// HuntChunks lists the raw chunks (still kept) that hold records of
// domains in [from, to), in order of their first matching hour, from
// offset on.
func (s *Store) HuntChunks(ctx context.Context, domains []string, from, to time.Time, offset, limit int) ([]HuntChunk, error) {
	cond, args := huntCond(domains)
	args = append(args, hourOf(from), to.Unix(), limit, offset)
	return queryAll(ctx, s, func(sc scanner) (HuntChunk, error) {
		var c HuntChunk
		return c, sc.Scan(&c.DeviceID, &c.ChunkID, &c.Path, &c.FirstHour)
	}, "SELECT h.device_id, h.chunk_id, c.path, MIN(h.hour) FROM hunt_index h JOIN chunks c ON c.device_id = h.device_id AND c.chunk_id = h.chunk_id "+
		"WHERE "+cond+" AND h.hour >= ? AND h.hour < ? GROUP BY h.device_id, h.chunk_id, c.path ORDER BY MIN(h.hour), h.device_id, h.chunk_id LIMIT ? OFFSET ?", args...)
}

// DeviceChunks lists a device's raw chunks received in [from, to+slack)
// (a chunk is received after its records), oldest first, from offset on.
func (s *Store) DeviceChunks(ctx context.Context, device string, from, to time.Time, offset, limit int) ([]ChunkMeta, error) {
	return queryAll(ctx, s, scanChunk, "SELECT "+chunkCols+" FROM chunks WHERE device_id = ? AND received_at >= ? AND received_at < ? ORDER BY received_at, chunk_id LIMIT ? OFFSET ?",
		device, ms(from), ms(to.Add(24*time.Hour)), limit, offset)
}
