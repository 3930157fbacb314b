package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ChunkMeta is one ingested telemetry chunk; the raw gzip NDJSON is at Path
// (relative to the console's chunk directory).
type ChunkMeta struct {
	DeviceID        string    `json:"deviceId"`
	ChunkID         string    `json:"chunkId"`
	SHA256          string    `json:"sha256"`
	CompressedBytes int64     `json:"compressedBytes"`
	Records         int64     `json:"records"`
	ReceivedAt      time.Time `json:"receivedAt"`
	Path            string    `json:"path"`
}

// TrafficKey is the aggregation key below the device: the hour (Unix
// seconds of its start), the app (catalog id, "" for none) and the domain
// ("" for records without one).
type TrafficKey struct {
	Hour   int64
	AppID  string
	Domain string
}

// Counters are what a record adds to its aggregate.
type Counters struct {
	Transactions  int64 `json:"transactions"`
	BytesSent     int64 `json:"bytesSent"`
	BytesReceived int64 `json:"bytesReceived"`
	Blocks        int64 `json:"blocks"`
	Warns         int64 `json:"warns"`
	Bypasses      int64 `json:"bypasses"`
	Audits        int64 `json:"audits"`
	Failures      int64 `json:"failures"`
}

// Add sums o into c.
func (c *Counters) Add(o Counters) {
	c.Transactions += o.Transactions
	c.BytesSent += o.BytesSent
	c.BytesReceived += o.BytesReceived
	c.Blocks += o.Blocks
	c.Warns += o.Warns
	c.Bypasses += o.Bypasses
	c.Audits += o.Audits
	c.Failures += o.Failures
}

// ActionKey is an hour and an ActionType.
type ActionKey struct {
	Hour       int64
	ActionType string
}

// UserKey is a distinct user under a traffic key.
type UserKey struct {
	TrafficKey
	User string
}

// Seen is a first/last sighting of a user or an address on a device.
type Seen struct {
	Value     string    `json:"value"`
	Interface string    `json:"interface,omitempty"`
	MAC       string    `json:"mac,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
}

// DeviceInfo is the newest DeviceInfo record of a chunk.
type DeviceInfo struct {
	At                                        time.Time
	Name, OSPlatform, OSVersion, AgentVersion string
	LoggedOnUsers                             []string
}

// ChunkBatch is everything one chunk adds to the store, applied in one
// transaction with the chunk's row.
type ChunkBatch struct {
	Meta    ChunkMeta
	Traffic map[TrafficKey]*Counters
	Users   map[UserKey]struct{}
	// Bypassers are the users who bypassed a Warn under a traffic key
	// (the discovery views count distinct users who bypassed).
	Bypassers map[UserKey]struct{}
	Actions   map[ActionKey]int64
	People    map[string]*Seen // device users by name
	Addresses map[string]*Seen // device addresses by address
	Info      *DeviceInfo
}

const chunkCols = "device_id, chunk_id, sha256, compressed_bytes, records, received_at, path"

// firstHour is the hour of the batch's oldest aggregated record (where
// hunting starts reading the index for this chunk), or its receipt's
// hour when it aggregated none.
func (b *ChunkBatch) firstHour() int64 {
	first := hourOf(b.Meta.ReceivedAt)
	for k := range b.Traffic {
		first = min(first, k.Hour)
	}
	return first
}

func scanChunk(sc scanner) (ChunkMeta, error) {
	var c ChunkMeta
	var at int64
	err := sc.Scan(&c.DeviceID, &c.ChunkID, &c.SHA256, &c.CompressedBytes, &c.Records, &at, &c.Path)
	c.ReceivedAt = fromMS(at)
	return c, err
}

// Chunk returns a stored chunk's row.
func (s *Store) Chunk(ctx context.Context, device, chunk string) (ChunkMeta, error) {
	c, err := scanChunk(s.queryRow(ctx, "SELECT "+chunkCols+" FROM chunks WHERE device_id = ? AND chunk_id = ?", device, chunk))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	return c, err
}

// IngestChunk stores the chunk's row and adds its aggregates in one
// transaction. A chunk id already stored gives ErrDuplicateChunk (same
// SHA-256: nothing is counted again) or ErrChunkConflict.
//
// On PostgreSQL every statement of the chunk goes to the server in one
// pipelined batch (ingestBatch, ingest_pg.go): one round trip per chunk.
func (s *Store) IngestChunk(ctx context.Context, b *ChunkBatch) error {
	if s.dialect == Postgres {
		return s.ingestBatch(ctx, b)
	}
	m := b.Meta
	return s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, s.q("INSERT INTO chunks (device_id, chunk_id, sha256, compressed_bytes, records, received_at, path, first_hour) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, chunk_id) DO NOTHING"),
			m.DeviceID, m.ChunkID, m.SHA256, m.CompressedBytes, m.Records, ms(m.ReceivedAt), m.Path, b.firstHour())
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return s.storedChunk(ctx, tx, m)
		}
		return s.writeChunk(ctx, tx, b)
	})
}

// storedChunk tells a retry (ErrDuplicateChunk) from another chunk under
// the same id (ErrChunkConflict), for a chunk whose row is already stored.
func (s *Store) storedChunk(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, m ChunkMeta) error {
	var sum string
	if err := q.QueryRowContext(ctx, s.q("SELECT sha256 FROM chunks WHERE device_id = ? AND chunk_id = ?"), m.DeviceID, m.ChunkID).Scan(&sum); err != nil {
		return fmt.Errorf("store: read the stored chunk %s/%s: %w", m.DeviceID, m.ChunkID, err)
	}
	if sum == m.SHA256 {
		return ErrDuplicateChunk
	}
	return ErrChunkConflict
}

// execer runs a write: a *sql.Tx, or a PostgreSQL batch that queues it
// (pgQueue, ingest_pg.go).
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// writeChunk writes everything a chunk adds but its row, in the order the
// statements must run: the device's own rows, then the fleet-wide ones
// (applyRollups says why they come last).
func (s *Store) writeChunk(ctx context.Context, tx execer, b *ChunkBatch) error {
	m := b.Meta
	if err := s.applyTraffic(ctx, tx, m.DeviceID, b); err != nil {
		return err
	}
	if err := s.applySeen(ctx, tx, m.DeviceID, b); err != nil {
		return err
	}
	// The discovery rollups and the hunting index (rollup.go); the
	// fleet-wide rows last, below.
	fleet, err := s.applyRollups(ctx, tx, b, s.now())
	if err != nil {
		return err
	}
	if err := s.updateDevice(ctx, tx, b); err != nil {
		return err
	}
	return fleet()
}

// updateDevice records the chunk's receipt and its DeviceInfo on the
// device's row, in one statement that changes the row only when a value
// changes (each UPDATE is a new row version and its WAL, and ingest made
// two per chunk).
//
// The DeviceInfo of the chunk received last wins (the chunk's newest
// record), and info_at is that receipt: record clocks cannot be trusted to
// order it (a clock at 9999 froze it, one re-dated from 1970 beat a real
// record made a second before). A stored info_at after this receipt (+1 h)
// was written from a bad clock by an older console, and is replaced.
func (s *Store) updateDevice(ctx context.Context, tx execer, b *ChunkBatch) error {
	m := b.Meta
	rcv := ms(m.ReceivedAt)
	var has int64
	var users, av, osp, osv string
	if in := b.Info; in != nil {
		has, users, av, osp, osv = 1, strings.Join(in.LoggedOnUsers, "\n"), in.AgentVersion, in.OSPlatform, in.OSVersion
	}
	// apply: this chunk's DeviceInfo replaces the stored one.
	apply := "(CAST(? AS BIGINT) = 1 AND (info_at <= ? OR info_at > ?))"
	applyArgs := []any{has, rcv, ms(m.ReceivedAt.Add(time.Hour))}
	var args []any
	arg := func(v ...any) { args = append(args, v...) }
	q := "UPDATE devices SET last_chunk_at = CASE WHEN last_chunk_at < ? THEN ? ELSE last_chunk_at END, "
	arg(rcv, rcv)
	q += "info_at = CASE WHEN " + apply + " THEN ? ELSE info_at END, "
	arg(applyArgs...)
	arg(rcv)
	q += "logged_on_users = CASE WHEN " + apply + " THEN ? ELSE logged_on_users END, "
	arg(applyArgs...)
	arg(users)
	for i, c := range []struct{ col, v string }{{"agent_version", av}, {"os_platform", osp}, {"os_version", osv}} {
		if i > 0 {
			q += ", "
		}
		q += c.col + " = CASE WHEN " + apply + " AND checkin_known = 0 AND ? <> '' THEN ? ELSE " + c.col + " END"
		arg(applyArgs...)
		arg(c.v, c.v)
	}
	// Nothing changes: no new row version (the receipt of a chunk is
	// normally later, so this mostly skips re-sent chunks' DeviceInfo).
	q += " WHERE id = ? AND (last_chunk_at < ? OR (" + apply + " AND (info_at <> ? OR logged_on_users <> ? OR (checkin_known = 0 AND (" +
		"(? <> '' AND agent_version <> ?) OR (? <> '' AND os_platform <> ?) OR (? <> '' AND os_version <> ?))))))"
	arg(m.DeviceID, rcv)
	arg(applyArgs...)
	arg(rcv, users, av, av, osp, osp, osv, osv)
	if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
		return fmt.Errorf("store: device %s: %w", m.DeviceID, err)
	}
	return nil
}

func (s *Store) applyTraffic(ctx context.Context, tx execer, device string, b *ChunkBatch) error {
	text := func(n string) column { return column{n, "text[]"} }
	num := func(n string) column { return column{n, "bigint[]"} }
	if len(b.Traffic) > 0 {
		rows := make([][]any, 0, len(b.Traffic))
		for k, c := range b.Traffic {
			rows = append(rows, []any{device, k.Hour, k.AppID, k.Domain, c.Transactions, c.BytesSent, c.BytesReceived, c.Blocks, c.Warns, c.Bypasses, c.Audits, c.Failures})
		}
		err := s.batchInsert(ctx, tx, "traffic_hourly", []column{text("device_id"), num("hour"), text("app_id"), text("domain"), num("transactions"),
			num("bytes_sent"), num("bytes_received"), num("blocks"), num("warns"), num("bypasses"), num("audits"), num("failures")},
			"ON CONFLICT (device_id, hour, app_id, domain) DO UPDATE SET "+
				"transactions = traffic_hourly.transactions + excluded.transactions, bytes_sent = traffic_hourly.bytes_sent + excluded.bytes_sent, "+
				"bytes_received = traffic_hourly.bytes_received + excluded.bytes_received, blocks = traffic_hourly.blocks + excluded.blocks, "+
				"warns = traffic_hourly.warns + excluded.warns, bypasses = traffic_hourly.bypasses + excluded.bypasses, "+
				"audits = traffic_hourly.audits + excluded.audits, failures = traffic_hourly.failures + excluded.failures", rows)
		if err != nil {
			return fmt.Errorf("store: traffic: %w", err)
		}
	}
	if len(b.Users) > 0 {
		rows := make([][]any, 0, len(b.Users))
		for k := range b.Users {
			rows = append(rows, []any{device, k.Hour, k.AppID, k.Domain, k.User})
		}
		if err := s.batchInsert(ctx, tx, "traffic_hourly_users", []column{text("device_id"), num("hour"), text("app_id"), text("domain"), text("user_name")},
			"ON CONFLICT DO NOTHING", rows); err != nil {
			return fmt.Errorf("store: users: %w", err)
		}
	}
	if len(b.Actions) > 0 {
		rows := make([][]any, 0, len(b.Actions))
		for k, n := range b.Actions {
			rows = append(rows, []any{device, k.Hour, k.ActionType, n})
		}
		if err := s.batchInsert(ctx, tx, "actions_hourly", []column{text("device_id"), num("hour"), text("action_type"), num("records")},
			"ON CONFLICT (device_id, hour, action_type) DO UPDATE SET records = actions_hourly.records + excluded.records", rows); err != nil {
			return fmt.Errorf("store: actions: %w", err)
		}
	}
	return nil
}

// seenUpsert keeps the earliest first and the latest last sighting.
const seenUpdate = "first_seen = CASE WHEN excluded.first_seen < %[1]s.first_seen THEN excluded.first_seen ELSE %[1]s.first_seen END, " +
	"last_seen = CASE WHEN excluded.last_seen > %[1]s.last_seen THEN excluded.last_seen ELSE %[1]s.last_seen END"

// seenChanged is true when seenUpdate changes the row: a row left as it
// is makes no new row version (a device's users and addresses are the
// same in most of its chunks).
const seenChanged = "(excluded.first_seen < %[1]s.first_seen OR excluded.last_seen > %[1]s.last_seen)"

func (s *Store) applySeen(ctx context.Context, tx execer, device string, b *ChunkBatch) error {
	text := func(n string) column { return column{n, "text[]"} }
	num := func(n string) column { return column{n, "bigint[]"} }
	if len(b.People) > 0 {
		rows := make([][]any, 0, len(b.People))
		for _, p := range b.People {
			rows = append(rows, []any{device, p.Value, ms(p.FirstSeen), ms(p.LastSeen)})
		}
		if err := s.batchInsert(ctx, tx, "device_users", []column{text("device_id"), text("user_name"), num("first_seen"), num("last_seen")},
			"ON CONFLICT (device_id, user_name) DO UPDATE SET "+fmt.Sprintf(seenUpdate, "device_users")+" WHERE "+fmt.Sprintf(seenChanged, "device_users"), rows); err != nil {
			return fmt.Errorf("store: device users: %w", err)
		}
	}
	if len(b.Addresses) > 0 {
		rows := make([][]any, 0, len(b.Addresses))
		for _, a := range b.Addresses {
			rows = append(rows, []any{device, a.Value, a.Interface, a.MAC, ms(a.FirstSeen), ms(a.LastSeen)})
		}
		if err := s.batchInsert(ctx, tx, "device_addresses", []column{text("device_id"), text("address"), text("interface"), text("mac"), num("first_seen"), num("last_seen")},
			"ON CONFLICT (device_id, address) DO UPDATE SET "+
				"interface = CASE WHEN excluded.interface <> '' THEN excluded.interface ELSE device_addresses.interface END, "+
				"mac = CASE WHEN excluded.mac <> '' THEN excluded.mac ELSE device_addresses.mac END, "+
				fmt.Sprintf(seenUpdate, "device_addresses")+" WHERE "+fmt.Sprintf(seenChanged, "device_addresses")+
				" OR (excluded.interface <> '' AND excluded.interface <> device_addresses.interface) OR (excluded.mac <> '' AND excluded.mac <> device_addresses.mac)", rows); err != nil {
			return fmt.Errorf("store: device addresses: %w", err)
		}
	}
	return nil
}

// TrafficTotal is one app × domain summed over a period.
type TrafficTotal struct {
	AppID  string `json:"appId,omitempty"`
	Domain string `json:"domain,omitempty"`
	Counters
	Users int64 `json:"users"`
}

// DeviceTraffic sums a device's traffic per app × domain over [from, to),
// busiest first. Days compacted into daily aggregates (CompactTraffic)
// count whole when their start is in the range.
func (s *Store) DeviceTraffic(ctx context.Context, device string, from, to time.Time) ([]TrafficTotal, error) {
	return queryAll(ctx, s, func(sc scanner) (TrafficTotal, error) {
		var t TrafficTotal
		c := &t.Counters
		err := sc.Scan(&t.AppID, &t.Domain, &c.Transactions, &c.BytesSent, &c.BytesReceived, &c.Blocks, &c.Warns, &c.Bypasses, &c.Audits, &c.Failures, &t.Users)
		return t, err
	}, "SELECT t.app_id, t.domain, SUM(t.transactions), SUM(t.bytes_sent), SUM(t.bytes_received), SUM(t.blocks), SUM(t.warns), SUM(t.bypasses), SUM(t.audits), SUM(t.failures), "+
		"(SELECT COUNT(DISTINCT u.user_name) FROM ("+
		"SELECT user_name FROM traffic_hourly_users WHERE device_id = t.device_id AND app_id = t.app_id AND domain = t.domain AND hour >= ? AND hour < ? UNION ALL "+
		"SELECT user_name FROM traffic_daily_users WHERE device_id = t.device_id AND app_id = t.app_id AND domain = t.domain AND day >= ? AND day < ?) u) "+
		"FROM (SELECT device_id, app_id, domain, transactions, bytes_sent, bytes_received, blocks, warns, bypasses, audits, failures FROM traffic_hourly WHERE device_id = ? AND hour >= ? AND hour < ? UNION ALL "+
		"SELECT device_id, app_id, domain, transactions, bytes_sent, bytes_received, blocks, warns, bypasses, audits, failures FROM traffic_daily WHERE device_id = ? AND day >= ? AND day < ?) t "+
		"GROUP BY t.device_id, t.app_id, t.domain ORDER BY SUM(t.transactions) DESC, t.app_id, t.domain",
		hourOf(from), hourOf(to), hourOf(from), hourOf(to), device, hourOf(from), hourOf(to), device, hourOf(from), hourOf(to))
}

// DeviceActions counts a device's records per ActionType over [from, to)
// (compacted days as DeviceTraffic counts them).
func (s *Store) DeviceActions(ctx context.Context, device string, from, to time.Time) (map[string]int64, error) {
	type count struct {
		action string
		n      int64
	}
	list, err := queryAll(ctx, s, func(sc scanner) (count, error) {
		var c count
		return c, sc.Scan(&c.action, &c.n)
	}, "SELECT action_type, SUM(records) FROM (SELECT action_type, records FROM actions_hourly WHERE device_id = ? AND hour >= ? AND hour < ? UNION ALL "+
		"SELECT action_type, records FROM actions_daily WHERE device_id = ? AND day >= ? AND day < ?) a GROUP BY action_type",
		device, hourOf(from), hourOf(to), device, hourOf(from), hourOf(to))
	out := make(map[string]int64, len(list))
	for _, c := range list {
		out[c.action] = c.n
	}
	return out, err
}

// DeviceSeen lists a device's users (what = "users") or addresses
// ("addresses"), most recently seen first.
func (s *Store) DeviceSeen(ctx context.Context, device, what string) ([]Seen, error) {
	var q string
	switch what {
	case "users":
		q = "SELECT user_name, '', '', first_seen, last_seen FROM device_users WHERE device_id = ? ORDER BY last_seen DESC"
	case "addresses":
		q = "SELECT address, interface, mac, first_seen, last_seen FROM device_addresses WHERE device_id = ? ORDER BY last_seen DESC"
	default:
		return nil, fmt.Errorf("store: DeviceSeen(%q)", what)
	}
	return queryAll(ctx, s, func(sc scanner) (Seen, error) {
		var v Seen
		var f, l int64
		err := sc.Scan(&v.Value, &v.Interface, &v.MAC, &f, &l)
		v.FirstSeen, v.LastSeen = fromMS(f), fromMS(l)
		return v, err
	}, q, device)
}

// ChunkStats counts a device's stored chunks and their records.
func (s *Store) ChunkStats(ctx context.Context, device string) (chunks, records int64, err error) {
	err = s.queryRow(ctx, "SELECT COUNT(*), COALESCE(SUM(records), 0) FROM chunks WHERE device_id = ?", device).Scan(&chunks, &records)
	return
}

// ChunksBefore lists up to limit chunks received before t (for retention).
func (s *Store) ChunksBefore(ctx context.Context, t time.Time, limit int) ([]ChunkMeta, error) {
	return queryAll(ctx, s, scanChunk, "SELECT "+chunkCols+" FROM chunks WHERE received_at < ? ORDER BY received_at LIMIT ?", ms(t), limit)
}

// DeleteChunk forgets a chunk's row (its aggregates stay).
func (s *Store) DeleteChunk(ctx context.Context, device, chunk string) error {
	_, err := s.exec(ctx, "DELETE FROM chunks WHERE device_id = ? AND chunk_id = ?", device, chunk)
	return err
}

// HourOf is the start of t's hour in Unix seconds, the aggregation key.
func HourOf(t time.Time) int64 { return hourOf(t) }

func hourOf(t time.Time) int64 { return t.Unix() - ((t.Unix()%3600)+3600)%3600 }
