package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The rollups, the hunting index, alerts and automatic tags behave the
// same on both stores (byte-ordered reversed domains on PostgreSQL too).
func TestAnalyticsStore(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		if _, err := s.CreateEnrollKey(ctx, EnrollKey{Name: "k", Hash: "kh", CreatedBy: "a", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"d1", "d2"} {
			if _, _, err := s.Enroll(ctx, "kh", Device{ID: d, Name: d, TokenHash: "t" + d}, ""); err != nil {
				t.Fatal(err)
			}
		}
		h := HourOf(now)
		old := HourOf(now.Add(-5 * 24 * time.Hour)) // past the hour buckets' keep
		k := func(hour int64, app, dom string) TrafficKey { return TrafficKey{hour, app, dom} }
		put := func(dev, chunk string, tr map[TrafficKey]*Counters, users, bypass map[UserKey]struct{}) {
			t.Helper()
			err := s.IngestChunk(ctx, &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: chunk, SHA256: chunk, ReceivedAt: now, Path: "p/" + dev + "/" + chunk},
				Traffic: tr, Users: users, Bypassers: bypass})
			if err != nil {
				t.Fatal(err)
			}
		}
		u := func(tk TrafficKey, name string) UserKey { return UserKey{tk, name} }
		slack := k(h, "slack", "app.slack.com")
		put("d1", "c1", map[TrafficKey]*Counters{
			slack:                        {Transactions: 3, BytesSent: 10, Warns: 1, Bypasses: 1},
			k(h, "", "intranet.example"): {Transactions: 1},
			k(h, "", "example-foo.com"):  {Transactions: 1},
			k(h, "", "a.b.example.com"):  {Transactions: 2},
			k(old, "slack", "slack.com"): {Transactions: 5},
		}, map[UserKey]struct{}{u(slack, "alice"): {}, u(slack, "carol"): {}}, map[UserKey]struct{}{u(slack, "alice"): {}})
		put("d2", "c1", map[TrafficKey]*Counters{
			k(h, "slack", "slack.com"):   {Transactions: 1, BytesReceived: 7},
			k(h, "", "intranet.example"): {Transactions: 1},
			k(h, "", "example.com"):      {Transactions: 1},
		}, map[UserKey]struct{}{u(k(h, "slack", "slack.com"), "alice"): {}}, nil)

		day := PeriodFor(now.Add(-30*24*time.Hour), now, now)
		hour := PeriodFor(now.Add(-24*time.Hour), now, now)
		if day.Span != SpanDay || hour.Span != SpanHour {
			t.Fatalf("periods %+v %+v", day, hour)
		}
		for _, p := range []Period{hour, day} {
			apps, err := s.DiscoveredApps(ctx, p, false)
			if err != nil || len(apps) != 1 {
				t.Fatalf("apps = %+v, %v", apps, err)
			}
			a := apps[0]
			want := int64(4)
			if p.Span == SpanDay {
				want = 9 // the old hour is only in day buckets
			}
			if a.AppID != "slack" || a.Transactions != want || a.Machines != 2 || a.Users != 2 || a.BypassUsers != 1 || a.Bypasses != 1 {
				t.Errorf("span %d: slack = %+v", p.Span, a)
			}
			cands, err := s.DiscoveredApps(ctx, p, true)
			if err != nil || len(cands) != 4 {
				t.Fatalf("candidates = %+v, %v", cands, err)
			}
			for _, c := range cands {
				if c.Domain == "intranet.example" && c.Machines != 2 {
					t.Errorf("intranet.example on %d machines", c.Machines)
				}
			}
		}
		d, err := s.App(ctx, hour, "slack", "")
		if err != nil || d.Total.Transactions != 4 || len(d.Domains) != 2 || len(d.Machines) != 2 || len(d.Users) != 2 || len(d.Series) != 1 {
			t.Errorf("App = %+v, %v", d, err)
		}
		m, err := s.Machine(ctx, day, "d1")
		if err != nil || m.Total.Transactions != 12 || len(m.Apps) != 4 {
			t.Errorf("Machine = %+v, %v", m, err)
		}
		tot, err := s.DeviceTotals(ctx, hour)
		if err != nil || tot["d2"].BytesReceived != 7 {
			t.Errorf("DeviceTotals = %+v, %v", tot, err)
		}
		// The fleet: every device's traffic, machines from the device
		// rollup, distinct users and bypassers from the presence bitmaps.
		for _, c := range []struct {
			p       Period
			tx      int64
			buckets int
		}{{hour, 10, 1}, {day, 15, 2}} {
			f, err := s.Fleet(ctx, c.p)
			if err != nil || f.Total.Transactions != c.tx || len(f.Series) != c.buckets || f.Machines != 2 || f.Users != 2 || f.BypassUsers != 1 || f.Total.BytesReceived != 7 {
				t.Errorf("span %d: Fleet = %+v, %v; want %d transactions in %d buckets, 2 machines, 2 users, 1 bypasser", c.p.Span, f, err, c.tx, c.buckets)
			}
		}
		if f, err := s.Fleet(ctx, PeriodFor(now.Add(-400*24*time.Hour), now.Add(-300*24*time.Hour), now)); err != nil || f.Series == nil || f.Machines != 0 || f.Users != 0 {
			t.Errorf("empty period: Fleet = %+v, %v; want nothing (and an empty series, not null)", f, err)
		}
		// A retried chunk adds nothing.
		if err := s.IngestChunk(ctx, &ChunkBatch{Meta: ChunkMeta{DeviceID: "d2", ChunkID: "c1", SHA256: "c1", ReceivedAt: now, Path: "p/d2/c1"},
			Traffic: map[TrafficKey]*Counters{k(h, "slack", "slack.com"): {Transactions: 1}}}); !errors.Is(err, ErrDuplicateChunk) {
			t.Fatalf("retry: %v", err)
		}
		if tot, _ := s.DeviceTotals(ctx, hour); tot["d2"].Transactions != 3 {
			t.Errorf("after a retried chunk d2 has %d transactions, want 3", tot["d2"].Transactions)
		}

		// Hunting: example.com and its subdomains, not example-foo.com.
		hd, err := s.HuntDevices(ctx, []string{"example.com"}, hour)
		if hd2, _ := s.HuntDevices(ctx, []string{"example.com"}, day); len(hd2) != 2 || hd2[0].Records != 2 {
			t.Errorf("HuntDevices per day = %+v", hd2)
		}
		if err != nil || len(hd) != 2 {
			t.Errorf("HuntDevices(example.com) = %+v, %v", hd, err)
		}
		for _, x := range hd {
			if x.DeviceID == "d1" && x.Records != 2 {
				t.Errorf("d1 example.com records = %d, want 2 (a.b.example.com, not example-foo.com)", x.Records)
			}
		}
		hc, err := s.HuntChunks(ctx, []string{"example.com", "slack.com"}, now.Add(-30*24*time.Hour), now.Add(time.Hour), 0, 10)
		if err != nil || len(hc) != 2 || hc[0].FirstHour != old {
			t.Errorf("HuntChunks = %+v, %v", hc, err)
		}
		if hc, _ := s.HuntChunks(ctx, []string{"example.com", "slack.com"}, now.Add(-30*24*time.Hour), now.Add(time.Hour), 1, 10); len(hc) != 1 {
			t.Errorf("HuntChunks offset 1 = %+v", hc)
		}

		// Alerts deduplicate per kind × device × app × hour and queue one
		// delivery per enabled destination.
		dest, err := s.CreateDestination(ctx, Destination{Name: "soc", Kind: DestWebhook, URL: "http://127.0.0.1/", Secret: "x", Enabled: true, CreatedBy: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateDestination(ctx, Destination{Name: "soc", Kind: DestSyslog}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate destination: %v", err)
		}
		for i := range 3 {
			a, created, err := s.RaiseAlert(ctx, Alert{Kind: AlertUnsanctionedAccess, DeviceID: "d1", AppID: "dropbox", FirstAt: now, LastAt: now.Add(time.Duration(i) * time.Second), Occurrences: 1})
			if err != nil || created != (i == 0) {
				t.Fatalf("raise %d: %+v %v %v", i, a, created, err)
			}
		}
		list, err := s.Alerts(ctx, AlertFilter{From: now.Add(-time.Hour), To: now.Add(time.Hour)})
		if err != nil || len(list) != 1 || list[0].Occurrences != 3 || !list[0].LastAt.Equal(now.Add(2*time.Second).Truncate(time.Millisecond)) {
			t.Fatalf("alerts = %+v, %v", list, err)
		}
		due, err := s.DueDeliveries(ctx, now, 10)
		if err != nil || len(due) != 1 || due[0].Destination.ID != dest.ID {
			t.Fatalf("due = %+v, %v", due, err)
		}
		if err := s.DeliveryResult(ctx, list[0].ID, dest.ID, DeliveryPending, now.Add(time.Minute), "503"); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.DueDeliveries(ctx, now, 10); len(due) != 0 {
			t.Errorf("a delivery backed off is due: %+v", due)
		}
		if due, _ := s.DueDeliveries(ctx, now.Add(2*time.Minute), 10); len(due) != 1 || due[0].Attempts != 1 {
			t.Errorf("due after back-off = %+v", due)
		}
		if err := s.SetAlertState(ctx, list[0].ID, AlertAcknowledged, "root"); err != nil {
			t.Fatal(err)
		}
		if a, _ := s.Alert(ctx, list[0].ID); a.State != AlertAcknowledged || a.AcknowledgedBy != "root" {
			t.Errorf("acknowledged = %+v", a)
		}
		counts, _ := s.DeviceAlertCounts(ctx, now.Add(-time.Hour), now.Add(time.Hour))
		if counts["d1"][AlertUnsanctionedAccess] != 1 {
			t.Errorf("alert counts = %v", counts)
		}

		// Automatic tags: set on untagged apps once, reverted, never again.
		p, err := s.CreateDiscoveryPolicy(ctx, DiscoveryPolicy{Name: "p", Tag: "Monitored", MinUsers: 1, PeriodDays: 7, Enabled: true, CreatedBy: "a"})
		if err != nil {
			t.Fatal(err)
		}
		at := AutoTag{AppID: "slack", PolicyID: p.ID, PolicyName: p.Name, Tag: "Monitored", Reason: "r"}
		if ok, err := s.ApplyAutoTag(ctx, at); !ok || err != nil {
			t.Fatalf("apply: %v %v", ok, err)
		}
		if ok, _ := s.ApplyAutoTag(ctx, at); ok {
			t.Error("applied twice")
		}
		tags, _ := s.AutoTags(ctx)
		if _, err := s.RevertAutoTag(ctx, tags[0].ID, "root"); err != nil {
			t.Fatal(err)
		}
		if tg, _ := s.Tags(ctx); tg["slack"].Tag != "" {
			t.Errorf("tag after revert = %+v", tg["slack"])
		}
		if ok, _ := s.ApplyAutoTag(ctx, at); ok {
			t.Error("a reverted automatic tag was set again")
		}
		// An admin's later tag is not undone by a revert.
		at.AppID = "discord"
		s.ApplyAutoTag(ctx, at)
		s.SetTag(ctx, "discord", "Sanctioned", "root")
		tags, _ = s.AutoTags(ctx)
		if _, err := s.RevertAutoTag(ctx, tags[0].ID, "root"); !errors.Is(err, ErrTagChanged) {
			t.Errorf("revert over an admin's tag: %v", err)
		}

		// Pruning drops hour buckets past the keep only.
		later := now.Add(HourlyRollupKeep + 2*time.Hour)
		if n, err := s.PruneHourlyRollups(ctx, later); err != nil || n == 0 {
			t.Errorf("prune = %d, %v", n, err)
		}
		if apps, _ := s.DiscoveredApps(ctx, day, false); len(apps) != 1 || apps[0].Transactions != 9 {
			t.Errorf("day buckets after prune = %+v", apps)
		}
	})
}

func TestReverseDomain(t *testing.T) {
	for in, want := range map[string]string{"www.Example.COM.": "com.example.www", "com": "com", "": ""} {
		if got := ReverseDomain(in); got != want {
			t.Errorf("ReverseDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
