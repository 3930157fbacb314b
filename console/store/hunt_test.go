package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestHuntWindowsAndNames: the windowed index read gives every chunk once,
// at its first matching hour, in the order of the whole period, page by
// page; a domain with more subdomains than are looked up one by one is
// still matched whole; a hunt starts at the oldest record a kept chunk
// holds, however late it was uploaded.
func TestHuntWindowsAndNames(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		s.now = func() time.Time { return now }
		h := HourOf(now)
		put := func(dev, chunk string, received time.Time, keys ...TrafficKey) {
			t.Helper()
			tr := map[TrafficKey]*Counters{}
			for _, k := range keys {
				tr[k] = &Counters{Transactions: 1}
			}
			if err := s.IngestChunk(ctx, &ChunkBatch{Meta: ChunkMeta{DeviceID: dev, ChunkID: chunk, SHA256: chunk, ReceivedAt: received, Path: dev + "/" + chunk}, Traffic: tr}); err != nil {
				t.Fatal(err)
			}
		}
		// 40 chunks over 10 days, hours apart, some spanning two hours
		// (their first hour decides their place); noise that must not match.
		type want struct {
			dev, chunk string
			first      int64
		}
		var all []want
		for i := range 40 {
			first := h - int64(i*6+1)*3600
			dev, chunk := fmt.Sprintf("d%d", i%3), fmt.Sprintf("c%02d", i)
			keys := []TrafficKey{{first, "", "www.hunted.example"}, {first, "", "example-foo.example"}}
			if i%4 == 0 {
				keys = append(keys, TrafficKey{first + 3600, "", "api.hunted.example"})
			}
			put(dev, chunk, now, keys...)
			all = append(all, want{dev, chunk, first})
		}
		slices.SortFunc(all, func(a, b want) int {
			if a.first != b.first {
				return int(a.first - b.first)
			}
			return 0
		})
		from, to := now.Add(-30*24*time.Hour), now.Add(time.Hour)
		start, err := s.HuntStart(ctx, from)
		if err != nil || start.Unix() != all[0].first {
			t.Fatalf("HuntStart = %v, %v; want the oldest kept record's hour %v", start, err, time.Unix(all[0].first, 0).UTC())
		}
		// One request's pages through one Hunt, as the API reads them.
		var got []want
		hunt := s.NewHunt([]string{"hunted.example"})
		for off := 0; ; off += 7 {
			page, err := hunt.Chunks(ctx, start, to, off, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				got = append(got, want{c.DeviceID, c.ChunkID, c.FirstHour})
			}
			if len(page) < 7 {
				break
			}
		}
		if !slices.Equal(got, all) {
			t.Errorf("pages of 7 = %v\nwant %v", got, all)
		}
		if none, err := s.HuntChunks(ctx, []string{"absent.example"}, start, to, 0, 10); err != nil || len(none) != 0 {
			t.Errorf("a domain the index lacks = %v, %v", none, err)
		}

		// More subdomains than huntNamesMax: matched as a range, all counted.
		var keys []TrafficKey
		for i := range huntNamesMax + 20 {
			keys = append(keys, TrafficKey{h, "", fmt.Sprintf("n%d.many.example", i)})
		}
		put("d9", "many", now, append(keys, TrafficKey{h, "", "many.example"}, TrafficKey{h, "", "notmany.example"})...)
		for _, p := range []Period{PeriodFor(now.Add(-24*time.Hour), now, now), PeriodFor(from, now, now)} {
			hd, err := s.HuntDevices(ctx, []string{"many.example"}, p)
			if err != nil || len(hd) != 1 || hd[0].Records != int64(huntNamesMax+21) {
				t.Errorf("span %d: HuntDevices(many.example) = %+v, %v; want d9 with %d records", p.Span, hd, err, huntNamesMax+21)
			}
		}

		// A chunk uploaded now with records of 20 days ago moves the start.
		late := h - 20*24*3600
		put("d8", "late", now, TrafficKey{late, "", "www.hunted.example"})
		if start, err := s.HuntStart(ctx, from); err != nil || start.Unix() != late {
			t.Errorf("HuntStart after a late upload = %v, %v; want %v", start, err, time.Unix(late, 0).UTC())
		}
		if first, err := s.HuntChunks(ctx, []string{"hunted.example"}, from, to, 0, 1); err != nil || len(first) != 1 || first[0].ChunkID != "late" {
			t.Errorf("first chunk = %+v, %v; want the late upload", first, err)
		}
	})
}
