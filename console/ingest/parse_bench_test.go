package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/catalog"
)

// fleetChunk is a chunk shaped like the simulator's (console/loadtest
// gen.go) and an agent's: a DeviceInfo record, then n-1 transactions of
// three users to a working set of 300 names, Zipf-like, two in three from
// the shipped catalog (matched to apps) and one in three unknown to it;
// keys in encoding/json's order, account names with a backslash.
func fleetChunk(tb testing.TB, cat *catalog.Catalog, device string, n int, at time.Time) []byte {
	tb.Helper()
	r := rand.New(rand.NewPCG(22, 7))
	var names []string
	for _, a := range cat.Apps() {
		names = append(names, a.Domains...)
	}
	working := make([]string, 300)
	for i := range working {
		if r.IntN(3) == 0 {
			working[i] = fmt.Sprintf("ads%d.tracker%d.example", r.IntN(1000), r.IntN(50))
		} else {
			working[i] = names[r.IntN(len(names))]
		}
	}
	users := []string{`CORP\` + device + "-user", `CORP\svc-backup`, `NT AUTHORITY\SYSTEM`}
	actions := []string{"ConnectionSuccess", "DnsQueryResponse", "ConnectionSuccess", "DnsQueryResponse", "ConnectionFailed", "NetworkProtectionBlocked"}
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	start := at.Add(-time.Hour).Truncate(time.Second)
	enc.Encode(map[string]any{
		"Timestamp": start.Format(time.RFC3339Nano), "DeviceId": device, "DeviceName": device, "ActionType": "DeviceInfo",
		"OSPlatform": "linux", "OSVersion": "Debian GNU/Linux 12 (bookworm)", "AgentVersion": "loadtest",
		"IPAddresses":   []map[string]string{{"Interface": "eth0", "Address": "192.0.2.7", "Mac": "02:00:00:00:00:01"}},
		"LoggedOnUsers": []string{users[0]},
	})
	for i := 1; i < n; i++ {
		action := actions[r.IntN(len(actions))]
		rec := map[string]any{
			"Timestamp": start.Add(time.Duration(i) * time.Hour / time.Duration(n)).Format(time.RFC3339Nano),
			"DeviceId":  device, "DeviceName": device, "ActionType": action,
			"RemoteUrl": working[min(len(working)-1, int(r.ExpFloat64()*40))], "RemoteIP": fmt.Sprintf("198.51.100.%d", 1+r.IntN(250)), "RemotePort": 443,
			"LocalIP": "192.0.2.10", "LocalPort": 30000 + r.IntN(30000), "Protocol": "Tcp", "Source": "sni",
			"InitiatingProcessFileName":    "firefox",
			"InitiatingProcessAccountName": users[r.IntN(len(users))],
		}
		if action == "DnsQueryResponse" {
			rec["Protocol"], rec["Source"], rec["RemotePort"] = "Dns", "dns", 53
		}
		if action == "ConnectionSuccess" {
			rec["BytesSent"], rec["BytesReceived"] = 200+r.IntN(5000), 500+r.IntN(200000)
		}
		enc.Encode(rec)
	}
	return gz(string(bytes.TrimSuffix(raw.Bytes(), []byte("\n"))))
}

// BenchmarkParseFleetChunk: BenchmarkParseChunk with the shipped catalog's
// matcher (the console's) and the simulator's records (issue 22's
// loadtest): decompress, decode, match and aggregate a 4,000-record chunk.
func BenchmarkParseFleetChunk(b *testing.B) {
	f := newFixture(b, Config{})
	cat, err := catalog.Builtin()
	if err != nil {
		b.Fatal(err)
	}
	m, err := cat.NewMatcher()
	if err != nil {
		b.Fatal(err)
	}
	f.in.cfg.Matcher = func() Matcher { return m }
	now := time.Now()
	const n = 4000
	body := fleetChunk(b, cat, "dev1", n, now)
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ch := &charge{in: f.in, ctx: ctx}
		bt, err := f.in.parse(bytes.NewReader(body), "dev1", now, ch)
		if err != nil {
			b.Fatal(err)
		}
		if bt.records != n {
			b.Fatalf("records = %d, want %d", bt.records, n)
		}
		ch.release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// TestWriteFile: a raw chunk is written into a day's device directory that
// does not exist yet, that exists, and that retention removed in between;
// each file holds its bytes and no temporary file is left.
func TestWriteFile(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "2026-12-07", "dev1")
	for i, step := range []string{"new directory", "existing directory", "directory removed"} {
		if step == "directory removed" {
			if err := os.RemoveAll(filepath.Join(root, "2026-12-07")); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("c%d.ndjson.gz", i))
		want := []byte(step)
		if err := writeFile(path, bytes.NewReader(want)); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: file holds %q, %v", step, got, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".chunk-") {
			t.Errorf("temporary file %s left", e.Name())
		}
	}
	if err := os.WriteFile(filepath.Join(root, "blocker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(root, "blocker", "dev1", "c.ndjson.gz"), bytes.NewReader(nil)); err == nil {
		t.Error("a directory that cannot be made: no error")
	}
}
