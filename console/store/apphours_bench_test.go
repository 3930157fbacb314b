package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// beforeAppDeviceSQL is appDevicePresence's statement before migration
// 0039 (both spans into roll_app_device in every chunk), for the
// benchmarks' "before".
func beforeAppDeviceSQL(rows [][]any) (string, []any) {
	sortRows(rows)
	const prefix = "INSERT INTO roll_app_device (span, bucket, app_id, domain, device_id, " + counterCols + ", last_hour) VALUES "
	_, cols, _ := pgColumns(prefix, rows)
	sel, args := pgUnnest(cols, rows)
	return "WITH r AS (" + strings.TrimSuffix(prefix, "VALUES ") + sel +
		" ON CONFLICT (span, bucket, app_id, domain, device_id) DO UPDATE SET " + addUpdate("roll_app_device") +
		" RETURNING span, bucket, app_id, domain, device_id, xmax = 0 AS inserted)" +
		" INSERT INTO presence_app_device (span, block, app_id, domain, device_id, bits)" +
		" SELECT span, bucket / span / 32, app_id, domain, device_id, bit_or(CAST(1 AS BIGINT) << CAST(bucket / span % 32 AS INTEGER))" +
		" FROM r WHERE inserted GROUP BY span, bucket / span / 32, app_id, domain, device_id ORDER BY 1, 2, 3, 4, 5" +
		" ON CONFLICT (span, block, app_id, domain, device_id) DO UPDATE SET bits = presence_app_device.bits | excluded.bits" +
		" WHERE presence_app_device.bits | excluded.bits <> presence_app_device.bits", args
}

// BenchmarkAppDeviceDayWork: the devices' app rollup work of one day of
// 50 devices × 50 apps, per row of a chunk (ns/row: one app of one hour
// of one chunk), with 1 or 4 chunks per device and hour. "before": the
// statement before migration 0039, hour and day rows upserted by every
// chunk; "after": the statement now (hour rows into
// roll_app_device_hour); "fold": FoldHuntDays adding the day's hour rows
// to roll_app_device once (per row of the chunks that wrote them, so
// after + fold is the whole cost of a row now). The chunks of a device's
// day are sent pipelined, 24 to a round trip, so commits and round trips
// are not counted (BenchmarkHuntDayWork).
func BenchmarkAppDeviceDayWork(b *testing.B) {
	const devices, apps = 50, 50
	for _, perHour := range []int{1, 4} {
		rows := devices * 24 * perHour * apps
		chunkRows := func(d int64, dev, hr, c int) map[rollKey]*rollVal {
			m := map[rollKey]*rollVal{}
			h := d + int64(hr)*3600
			for a := range apps {
				m[rollKey{SpanHour, h, fmt.Sprintf("app%02d", a), ""}] = &rollVal{Counters{Transactions: int64(1 + c), BytesSent: 100, BytesReceived: 200}, h}
			}
			return m
		}
		day := func(b *testing.B, s *Store, d int64, after bool) {
			ctx := context.Background()
			for dev := range devices {
				device := fmt.Sprintf("d%03d", dev)
				q := &pgQueue{}
				for hr := range 24 {
					for c := range perHour {
						m := chunkRows(d, dev, hr, c)
						if after {
							if err := s.appDevicePresence(ctx, q, device, d-86400, m); err != nil {
								b.Fatal(err)
							}
							continue
						}
						var rs [][]any
						for k, v := range m {
							for _, span := range []int64{SpanHour, SpanDay} {
								rs = append(rs, append(append([]any{span, bucketOf(k.bucket, span), k.app, k.domain, device}, v.values()...), v.last))
							}
						}
						sql, args := beforeAppDeviceSQL(rs)
						q.queue(sql, args...)
					}
				}
				if err := s.sendBatch(ctx, &q.batch); err != nil {
					b.Fatal(err)
				}
			}
		}
		name := fmt.Sprintf("%d-per-hour", perHour)
		for _, after := range []bool{false, true} {
			b.Run(name+map[bool]string{false: "/before", true: "/after"}[after], func(b *testing.B) {
				s := huntBenchStore(b)
				day0 := bucketOf(HourOf(time.Now()), SpanDay) - 400*86400
				if _, err := s.w.Exec(fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %[1]d; UPDATE app_hours_watermark SET g = %[1]d", day0)); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					day(b, s, day0+int64(i)*86400, after)
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
			})
		}
		b.Run(name+"/fold", func(b *testing.B) {
			s := huntBenchStore(b)
			ctx := context.Background()
			day0 := bucketOf(HourOf(time.Now()), SpanDay) - 400*86400
			i := 0
			for b.Loop() {
				b.StopTimer()
				d := day0 + int64(i)*86400
				i++
				if _, err := s.w.Exec(fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %[1]d; UPDATE app_hours_watermark SET g = %[1]d", d)); err != nil {
					b.Fatal(err)
				}
				day(b, s, d, true)
				if _, err := s.w.Exec("ANALYZE roll_app_device_hour"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				f, err := s.FoldHuntDays(ctx, time.Unix(d+86400, 0).Add(huntFoldLag))
				if err != nil || f.To != d+86400 || f.AppRows != devices*apps {
					b.Fatalf("fold = %+v, %v; want up to %d, %d app rows", f, err, d+86400, devices*apps)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}

// BenchmarkAppDeviceViews: a machine's apps over 30 days and an app's
// machines over 30 days, 500 devices × 20 apps: "before" with every
// day in roll_app_device's day rows (and the last 26 hours' hour rows
// beside them), "after" with the last 26 hours in roll_app_device_hour
// only, not folded (the most there are, at 01:59 UTC).
func BenchmarkAppDeviceViews(b *testing.B) {
	s := huntBenchStore(b)
	ctx := context.Background()
	now := time.Now().UTC()
	s.now = func() time.Time { return now }
	h := HourOf(now)
	g := h - 25*3600
	exec := func(b *testing.B, qs ...string) { execAll(b, s, qs...) }
	var named []string
	for i, c := range strings.Split(counterCols, ", ") {
		named = append(named, fmt.Sprintf("CAST(%d AS BIGINT) AS %s", []int{1, 100, 200, 0, 0, 0, 0, 0}[i], c))
	}
	vals := strings.Join(named, ", ")
	hours := fmt.Sprintf("SELECT 'd' || lpad(CAST(d AS TEXT), 4, '0') AS device_id, %d + hr * 3600 AS bucket, 'app' || a AS app_id, '' AS domain, %s, %[1]d + hr * 3600 AS last_hour "+
		"FROM generate_series(0, 499) AS d, generate_series(0, 25) AS hr, generate_series(0, 19) AS a", g, vals)
	dayOfG := bucketOf(g, SpanDay)
	exec(b, fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %[1]d; UPDATE app_hours_watermark SET g = %[1]d", dayOfG+86400*3),
		// 30 days of day rows before g's day.
		fmt.Sprintf("INSERT INTO roll_app_device (span, bucket, app_id, domain, device_id, %s, last_hour) "+
			"SELECT 86400, %d - dd * 86400, 'app' || a, '', 'd' || lpad(CAST(d AS TEXT), 4, '0'), 24, 2400, 4800, 0, 0, 0, 0, 0, %[2]d - dd * 86400 + 82800 "+
			"FROM generate_series(0, 499) AS d, generate_series(1, 30) AS dd, generate_series(0, 19) AS a", counterCols, dayOfG),
		"INSERT INTO roll_app_device (device_id, span, bucket, app_id, domain, "+counterCols+", last_hour) SELECT device_id, 3600, bucket, app_id, domain, "+counterCols+", last_hour FROM ("+hours+") x",
		"INSERT INTO roll_app_device (device_id, span, bucket, app_id, domain, "+counterCols+", last_hour) SELECT device_id, 86400, "+huntDaySQL("bucket")+", app_id, domain, "+sumCols("")+", MAX(last_hour) FROM ("+hours+") x GROUP BY 1, 3, 4, 5",
		"ANALYZE roll_app_device")
	month := PeriodFor(now.Add(-30*24*time.Hour), now, now)
	views := func(b *testing.B) {
		b.Run("machine-month", func(b *testing.B) {
			for b.Loop() {
				m, err := s.Machine(ctx, month, "d0007")
				if err != nil || len(m.Apps) != 20 {
					b.Fatalf("machine = %d apps, %v", len(m.Apps), err)
				}
			}
		})
		b.Run("app-machines-month", func(b *testing.B) {
			for b.Loop() {
				a, err := s.App(ctx, month, "app7", "")
				if err != nil || len(a.Machines) != 500 {
					b.Fatalf("app = %d machines, %v", len(a.Machines), err)
				}
			}
		})
	}
	b.Run("before", views)
	exec(b, fmt.Sprintf("DELETE FROM roll_app_device WHERE bucket >= %d", dayOfG),
		"INSERT INTO roll_app_device_hour (device_id, bucket, app_id, domain, "+counterCols+", last_hour) "+hours,
		fmt.Sprintf("UPDATE hunt_watermark SET w = %d, f = %[1]d; UPDATE app_hours_watermark SET g = %[1]d", dayOfG),
		"ANALYZE roll_app_device", "ANALYZE roll_app_device_hour")
	b.Run("after", views)
}
