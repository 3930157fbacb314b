package store

import (
	"context"
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

// HuntChunk is a raw chunk that holds matching records.
type HuntChunk struct {
	DeviceID  string
	ChunkID   string
	Path      string
	FirstHour int64
}

// HuntDevices sums the hunting index per device for domains (and their
// subdomains) in the hours of [from, to).
func (s *Store) HuntDevices(ctx context.Context, domains []string, from, to time.Time) ([]HuntDevice, error) {
	cond, args := huntCond(domains)
	args = append(args, hourOf(from), to.Unix())
	return queryAll(ctx, s, func(sc scanner) (HuntDevice, error) {
		var d HuntDevice
		var f, l int64
		err := sc.Scan(&d.DeviceID, &f, &l, &d.Records)
		d.FirstHour, d.LastHour = time.Unix(f, 0).UTC(), time.Unix(l, 0).UTC()
		return d, err
	}, "SELECT h.device_id, MIN(h.hour), MAX(h.hour), SUM(h.records) FROM hunt_index h WHERE "+cond+" AND h.hour >= ? AND h.hour < ? GROUP BY h.device_id ORDER BY SUM(h.records) DESC, h.device_id", args...)
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
