package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/telemetry"
)

// seenRecord is what a ChunkHook was handed, copied at the call.
type seenRecord struct {
	R             telemetry.Record
	Count         int64
	AppID, Domain string
}

// recordingHook keeps a copy of every record each chunk's hook sees.
type recordingHook struct{ chunks [][]seenRecord }

func (h *recordingHook) Chunk(string) ChunkHook {
	h.chunks = append(h.chunks, nil)
	return &recordingChunk{h: h, i: len(h.chunks) - 1}
}

type recordingChunk struct {
	h *recordingHook
	i int
}

func (c *recordingChunk) Record(r *telemetry.Record, n int64, appID, domain string) {
	c.h.chunks[c.i] = append(c.h.chunks[c.i], seenRecord{*r, n, appID, domain})
}

func (*recordingChunk) Stored(context.Context, store.ChunkMeta) {}

// parseReference counts chunk as ingest did before one record was reused
// for every line and matches were cached: a new record per line read by
// json.Unmarshal (the reference FuzzDecodeRecord holds decodeRecord to),
// and every RemoteUrl matched afresh (the host cache is full of names no
// record has, so it neither answers nor grows). ok false: parse refuses
// the chunk (no countable record).
func parseReference(chunk []byte, m Matcher, caps keyCaps, hook ChunkHook, received time.Time) (b *batch, ok bool) {
	b = newBatch(m)
	b.caps, b.hook = caps, hook
	b.hosts = make(map[string]hostApp, hostCacheMax)
	for i := range hostCacheMax {
		b.hosts[fmt.Sprintf("\x00not a record's url %d", i)] = hostApp{"x.invalid", "x"}
	}
	line := 0
	for raw := range bytes.SplitSeq(chunk, []byte("\n")) {
		line++
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		var r record
		if json.Unmarshal(raw, &r) != nil {
			b.skipped[skipMalformed]++
			continue
		}
		reason, clamped := r.check("dev1", received)
		if reason != "" {
			b.skipped[reason]++
			continue
		}
		if clamped {
			b.clamped++
		}
		b.add(&r)
	}
	return b, b.records > 0
}

// parseDiffSeeds are chunks whose lines omit fields the line before them
// set (each must read as absent, not as the previous line's value), mix
// the fast decoder with json.Unmarshal's, and repeat names in other case,
// with a port, a trailing dot, userinfo or a scheme (the host cache's key).
var parseDiffSeeds = []string{
	rec("ConnectionSuccess", `,"RemoteUrl":"www.dropbox.com","InitiatingProcessAccountName":"CORP\\alice","LocalIP":"192.0.2.1","BytesSent":7,"BytesReceived":9,"RepeatCount":3,"RemotePort":443,"LocalPort":5000`) + "\n" +
		rec("ConnectionSuccess", ``) + "\n" +
		rec("ConnectionSuccess", `,"RemoteUrl":"WWW.Dropbox.COM."`) + "\n" +
		rec("NetworkProtectionUserBypassEvent", `,"RemoteUrl":"https://u:p@www.dropbox.com:8443/x?y#z","InitiatingProcessAccountName":"CORP\\bob"`) + "\n" +
		rec("NetworkProtectionUserBypassEvent", `,"RemoteUrl":"www.dropbox.com"`) + "\n",
	rec("DeviceInfo", `,"IPAddresses":[{"Address":"192.0.2.7","Interface":"eth0","Mac":"02:00:00:00:00:01"}],"LoggedOnUsers":["CORP\\alice"],"OSPlatform":"linux","OSVersion":"12","AgentVersion":"1"`) + "\n" +
		rec("DeviceInfo", ``) + "\n" +
		rec("DeviceInfo", `,"OSPlatform":"windows"`) + "\n" +
		`{"Timestamp":"2026-12-01T10:16:00Z","DeviceId":"dev1","ActionType":"DeviceInfo","LoggedOnUsers":[{"UserName":"carol"}]}` + "\n",
	rec("ConnectionSuccess", `,"RemoteUrl":"a.example","InitiatingProcessAccountName":"CORP\\\u00e9ve","RemoteIP":null`) + "\n" +
		rec("ConnectionSuccess", `,"RemoteUrl":"a.example","BytesSent":-1`) + "\n" +
		rec("ConnectionSuccess", `,"RemoteUrl":"a.example","BytesSent":1e3`) + "\n" +
		rec("ConnectionSuccess", `,"RemoteUrl":"a.example","BytesSent":0012`) + "\n" +
		rec("ConnectionSuccess", `,"RemoteUrl":"a.example","BytesSent":123456789012345678`) + "\n" +
		rec("ConnectionSuccess", `,"remoteurl":"b.example"`) + "\n" +
		rec("ConnectionSuccess", `,"DeviceId":"dev2"`) + "\n" +
		`{"Timestamp":"2020-01-01T00:00:00Z","DeviceId":"dev1","ActionType":"ConnectionSuccess","RemoteUrl":"old.example"}` + "\n" +
		"{\"Timestamp\":\"" + ts + "\",\"DeviceId\":\"dev1\",\"ActionType\":\"DnsQueryResponse\",\"RemoteUrl\":\"\xff.example\"}\n" +
		rec("TelemetryGap", `,"LostRecords":5,"GapReason":"x"`) + "\n" + rec("TelemetryGap", ``) + "\n",
}

// FuzzParseLikeFreshRecords: parse — one record reused for every line, a
// host cache per chunk, a pooled line buffer — counts a chunk as a new
// record per line and an uncached match do: the same aggregates, skips and
// hook calls, still the same after another chunk went through the pooled
// buffers (nothing of a line is kept past it).
func FuzzParseLikeFreshRecords(f *testing.F) {
	hook := &recordingHook{}
	// parse needs no database: the Ingest New would make, without one
	// (a fixture's cluster per fuzz worker left it a few runs a minute).
	cat, _ := catalog.Parse("app\tdropbox\tCloud storage\tdropbox.com\n")
	m, _ := cat.NewMatcher()
	in := &Ingest{cfg: Config{MaxLine: 4 << 10, MaxRecords: 400, MaxDecompressed: 64 << 20, AdmitWait: time.Second, Hook: hook,
		Matcher: func() Matcher { return m }}, budget: semaphore.NewWeighted(64 << 20), caps: defaultCaps}
	for _, s := range parseDiffSeeds {
		f.Add([]byte(s))
	}
	other := []byte(strings.Repeat(rec("ConnectionSuccess", `,"RemoteUrl":"zzzzzzzzzzzzzzzzzzzz.example","InitiatingProcessAccountName":"CORP\\zzzzzzzz","LocalIP":"203.0.113.99"`)+"\n", 20))
	received := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, chunk []byte) {
		// Within parse's limits, which the reference does not repeat.
		if bytes.Count(chunk, []byte("\n")) >= 400 {
			return
		}
		for l := range bytes.SplitSeq(chunk, []byte("\n")) {
			if len(l) >= 4<<10 {
				return
			}
		}
		parse := func(chunk []byte) (*batch, error) {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(chunk)
			zw.Close()
			ch := &charge{in: in, ctx: context.Background()}
			defer ch.release()
			return in.parse(&z, "dev1", received, ch)
		}
		hook.chunks = nil
		got, err := parse(chunk)
		if _, err := parse(other); err != nil {
			t.Fatal(err)
		}
		ref := &recordingHook{}
		want, ok := parseReference(chunk, in.cfg.Matcher(), in.caps, ref.Chunk("dev1"), received)
		if (err == nil) != ok {
			t.Fatalf("parse err %v, reference takes it %v", err, ok)
		}
		if !ok {
			return
		}
		if !reflect.DeepEqual(got.ChunkBatch, want.ChunkBatch) {
			t.Errorf("aggregates:\n parse %s\n ref   %s", dump(got.ChunkBatch), dump(want.ChunkBatch))
		}
		type counts struct {
			Records, Unknown, Clamped, Mem, Folded int64
			Skipped                                map[string]int64
		}
		g := counts{got.records, got.unknown, got.clamped, got.mem, got.folded, got.skipped}
		w := counts{want.records, want.unknown, want.clamped, want.mem, want.folded, want.skipped}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("counts: parse %+v, ref %+v", g, w)
		}
		if len(hook.chunks) != 2 || !reflect.DeepEqual(hook.chunks[0], ref.chunks[0]) {
			t.Errorf("hook saw:\n parse %+v\n ref   %+v", hook.chunks, ref.chunks)
		}
	})
}

// dump shows a batch's aggregates, the counters behind their pointers
// included.
func dump(b store.ChunkBatch) string {
	var s strings.Builder
	for k, c := range b.Traffic {
		fmt.Fprintf(&s, "%+v=%+v ", k, *c)
	}
	fmt.Fprintf(&s, "users %v bypassers %v actions %v", b.Users, b.Bypassers, b.Actions)
	for k, v := range b.People {
		fmt.Fprintf(&s, " person %q=%+v", k, *v)
	}
	for k, v := range b.Addresses {
		fmt.Fprintf(&s, " address %q=%+v", k, *v)
	}
	if b.Info != nil {
		fmt.Fprintf(&s, " info %+v", *b.Info)
	}
	return s.String()
}
