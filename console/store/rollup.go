package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
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
func (s *Store) applyRollups(ctx context.Context, tx *sql.Tx, b *ChunkBatch, now time.Time) error {
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
	add := func(m map[rollKey]*rollVal, k rollKey, c *Counters, hour int64) {
		v := m[k]
		if v == nil {
			v = &rollVal{}
			m[k] = v
		}
		v.Add(*c)
		v.last = max(v.last, hour)
	}
	for k, c := range b.Traffic {
		for _, span := range spans(k.Hour) {
			bk := bucketOf(k.Hour, span)
			add(app, rollKey{span, bk, k.AppID, k.Domain}, c, k.Hour)
			add(dev, rollKey{span, bk, k.AppID, rollupDomain(k)}, c, k.Hour)
			add(tot, rollKey{span: span, bucket: bk}, c, k.Hour)
		}
		if k.Domain != "" {
			hunt[huntKey{ReverseDomain(k.Domain), k.Hour}] += c.Transactions
		}
	}
	users := map[userRollKey]bool{}
	for _, set := range []map[UserKey]struct{}{b.Users, b.Bypassers} {
		for uk := range set {
			for _, span := range spans(uk.Hour) {
				k := userRollKey{rollKey{span, bucketOf(uk.Hour, span), uk.AppID, rollupDomain(uk.TrafficKey)}, uk.User}
				if _, ok := b.Bypassers[uk]; ok {
					users[k] = true
				} else if !users[k] {
					users[k] = false
				}
			}
		}
	}
	type table struct {
		name string
		m    map[rollKey]*rollVal
	}
	for _, t := range []table{{"roll_app", app}, {"roll_app_device", dev}, {"roll_device", tot}} {
		if len(t.m) == 0 {
			continue
		}
		var cols, ph, conflict string
		switch t.name {
		case "roll_app":
			cols, ph, conflict = "span, bucket, app_id, domain", "?, ?, ?, ?", "span, bucket, app_id, domain"
		case "roll_app_device":
			cols, ph, conflict = "span, bucket, app_id, domain, device_id", "?, ?, ?, ?, ?", "span, bucket, app_id, domain, device_id"
		default:
			cols, ph, conflict = "span, bucket, device_id", "?, ?, ?", "span, bucket, device_id"
		}
		st, err := tx.PrepareContext(ctx, s.q("INSERT INTO "+t.name+" ("+cols+", "+counterCols+", last_hour) VALUES ("+ph+", ?, ?, ?, ?, ?, ?, ?, ?, ?) "+
			"ON CONFLICT ("+conflict+") DO UPDATE SET "+addUpdate(t.name)))
		if err != nil {
			return fmt.Errorf("store: rollups: %w", err)
		}
		for k, v := range t.m {
			var args []any
			switch t.name {
			case "roll_app":
				args = []any{k.span, k.bucket, k.app, k.domain}
			case "roll_app_device":
				args = []any{k.span, k.bucket, k.app, k.domain, device}
			default:
				args = []any{k.span, k.bucket, device}
			}
			args = append(append(args, v.values()...), v.last)
			if _, err := st.ExecContext(ctx, args...); err != nil {
				st.Close()
				return fmt.Errorf("store: rollup %s: %w", t.name, err)
			}
		}
		st.Close()
	}
	if len(users) > 0 {
		st, err := tx.PrepareContext(ctx, s.q("INSERT INTO roll_app_user (span, bucket, app_id, domain, user_name, bypassed) VALUES (?, ?, ?, ?, ?, ?) "+
			"ON CONFLICT (span, bucket, app_id, domain, user_name) DO UPDATE SET bypassed = CASE WHEN excluded.bypassed > roll_app_user.bypassed THEN excluded.bypassed ELSE roll_app_user.bypassed END"))
		if err != nil {
			return fmt.Errorf("store: rollups: %w", err)
		}
		defer st.Close()
		for k, by := range users {
			n := 0
			if by {
				n = 1
			}
			if _, err := st.ExecContext(ctx, k.span, k.bucket, k.app, k.domain, k.user, n); err != nil {
				return fmt.Errorf("store: rollup users: %w", err)
			}
		}
	}
	if len(hunt) > 0 {
		st, err := tx.PrepareContext(ctx, s.q("INSERT INTO hunt_index (rdomain, hour, device_id, chunk_id, records) VALUES (?, ?, ?, ?, ?) "+
			"ON CONFLICT (rdomain, hour, device_id, chunk_id) DO UPDATE SET records = hunt_index.records + excluded.records"))
		if err != nil {
			return fmt.Errorf("store: hunting index: %w", err)
		}
		defer st.Close()
		for k, n := range hunt {
			if _, err := st.ExecContext(ctx, k.rdomain, k.hour, device, b.Meta.ChunkID, n); err != nil {
				return fmt.Errorf("store: hunting index: %w", err)
			}
		}
	}
	return nil
}

// PruneHourlyRollups drops hour buckets older than HourlyRollupKeep (day
// buckets stay) and hunting index rows of chunks that retention removed.
func (s *Store) PruneHourlyRollups(ctx context.Context, now time.Time) (int64, error) {
	cut := hourOf(now.Add(-HourlyRollupKeep))
	var total int64
	for _, t := range []string{"roll_app", "roll_app_device", "roll_app_user", "roll_device"} {
		r, err := s.exec(ctx, "DELETE FROM "+t+" WHERE span = ? AND bucket < ?", SpanHour, cut)
		if err != nil {
			return total, fmt.Errorf("store: prune %s: %w", t, err)
		}
		n, _ := r.RowsAffected()
		total += n
	}
	return total, nil
}
