package telemetry

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/internal/guard"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func ndjson(recs ...Record) []byte {
	var b []byte
	for i := range recs {
		b = append(AppendJSON(b, &recs[i]), '\n')
	}
	return b
}

func newTestCollector(t *testing.T, cfg CollectorConfig) *httptest.Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Authorize == nil {
		cfg.Authorize = TokenAuthorizer("secret")
	}
	c, err := NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv
}

func doPut(t *testing.T, url string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/x-ndjson")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

func TestCollectorRejects(t *testing.T) {
	srv := newTestCollector(t, CollectorConfig{MaxCompressed: 64 << 10, MaxDecompressed: 256 << 10, MaxLine: 4096})
	good := gz(t, ndjson(rec(1)))
	// 16 MiB of blank lines compress to ~16 KiB: far under the compressed
	// limit, 64 times over the decompressed one.
	bomb := gz(t, bytes.Repeat([]byte("                                       \n"), 16<<20/40))
	other := rec(1)
	other.DeviceId = "dev-2"
	badAction := rec(1)
	badAction.ActionType = strings.Repeat("A", 65)
	noTime := rec(1)
	noTime.Timestamp = time.Time{}
	tests := []struct {
		name string
		path string
		body []byte
		hdr  map[string]string
		want int
	}{
		{"no token", "/v1/telemetry/dev-1/c1", good, map[string]string{"Authorization": ""}, 401},
		{"wrong token", "/v1/telemetry/dev-1/c1", good, map[string]string{"Authorization": "Bearer nope"}, 401},
		{"not gzip encoded", "/v1/telemetry/dev-1/c1", good, map[string]string{"Content-Encoding": "identity"}, 415},
		{"wrong content type", "/v1/telemetry/dev-1/c1", good, map[string]string{"Content-Type": "text/plain"}, 415},
		{"bad chunk id", "/v1/telemetry/dev-1/..%2f..%2fx", good, nil, 400},
		{"gzip bomb", "/v1/telemetry/dev-1/c1", bomb, nil, 413},
		{"too large compressed", "/v1/telemetry/dev-1/c1", bytes.Repeat([]byte{1}, 65<<10), nil, 413},
		{"body not gzip", "/v1/telemetry/dev-1/c1", []byte("{}\n"), nil, 400},
		{"truncated gzip", "/v1/telemetry/dev-1/c1", good[:len(good)-6], nil, 400},
		{"not json", "/v1/telemetry/dev-1/c1", gz(t, []byte("hello\n")), nil, 400},
		{"unknown field", "/v1/telemetry/dev-1/c1", gz(t, []byte(`{"Timestamp":"2026-11-22T10:00:00Z","DeviceId":"dev-1","ActionType":"ConnectionSuccess","Evil":1}`+"\n")), nil, 400},
		{"two values on a line", "/v1/telemetry/dev-1/c1", gz(t, []byte(`{"Timestamp":"2026-11-22T10:00:00Z","DeviceId":"dev-1","ActionType":"ConnectionSuccess"} {}`+"\n")), nil, 400},
		{"other device's record", "/v1/telemetry/dev-1/c1", gz(t, ndjson(rec(1), other)), nil, 400},
		{"overlong action", "/v1/telemetry/dev-1/c1", gz(t, ndjson(badAction)), nil, 400},
		{"no timestamp", "/v1/telemetry/dev-1/c1", gz(t, ndjson(noTime)), nil, 400},
		{"line too long", "/v1/telemetry/dev-1/c1", gz(t, []byte(`{"DeviceId":"`+strings.Repeat("a", 5000)+`"}`+"\n")), nil, 413},
		{"empty chunk", "/v1/telemetry/dev-1/c1", gz(t, nil), nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, msg := doPut(t, srv.URL+tt.path, tt.body, tt.hdr); code != tt.want {
				t.Errorf("PUT = %d %q, want %d", code, msg, tt.want)
			}
		})
	}
	// Nothing rejected was stored: the good chunk is still new.
	if code, msg := doPut(t, srv.URL+"/v1/telemetry/dev-1/c1", good, nil); code != 201 {
		t.Errorf("good chunk after rejections = %d %q, want 201", code, msg)
	}
}

// TestCollectorRollupNamesAreHosts: a record's URL counts under its host in
// names and apart under urls, so URLs never fill the names' key cap (issue
// 23: names mixed "app.test" and "http://app.test/big.bin").
func TestCollectorRollupNamesAreHosts(t *testing.T) {
	dir := t.TempDir()
	srv := newTestCollector(t, CollectorConfig{Dir: dir, MaxKeys: 3})
	var recs []Record
	for i, u := range []string{"app.test", "http://app.test/big.bin", "http://App.test:8080/a?b", "https://[2001:db8::7]/x",
		"http://app.test/1", "http://app.test/2", "http://app.test/3", "other.test"} {
		r := rec(i + 1)
		r.RemoteUrl, r.BytesReceived = u, 100
		recs = append(recs, r)
	}
	if code, msg := doPut(t, srv.URL+"/v1/telemetry/dev-1/c1", gz(t, ndjson(recs...)), nil); code != 201 {
		t.Fatalf("PUT = %d %q", code, msg)
	}
	c, _ := NewCollector(CollectorConfig{Dir: dir, Authorize: TokenAuthorizer("secret")})
	ru, err := c.Rollup("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ru.Names) != 3 || ru.Names["app.test"] == nil || ru.Names["app.test"].Transactions != 6 ||
		ru.Names["2001:db8::7"] == nil || ru.Names["other.test"] == nil {
		t.Errorf("names = %v, want app.test (6), 2001:db8::7 and other.test", keys(ru.Names))
	}
	for k := range ru.Names {
		if strings.Contains(k, "/") {
			t.Errorf("a URL among the names: %q", k)
		}
	}
	if len(ru.URLs) != 3 || ru.URLs["http://app.test/big.bin"] == nil {
		t.Errorf("urls = %v, want the first three URLs (cap 3)", keys(ru.URLs))
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCollectorIdempotentAndRollups(t *testing.T) {
	dir := t.TempDir()
	srv := newTestCollector(t, CollectorConfig{Dir: dir})
	a := rec(1)
	a.RemoteUrl, a.Application, a.LocalIP, a.BytesSent, a.BytesReceived = "www.dropbox.com", "Dropbox", "192.0.2.10", 1000, 5000
	b := rec(2)
	b.RemoteUrl, b.Application, b.LocalIP, b.BytesSent, b.BytesReceived, b.InitiatingProcessAccountName = "dl.dropbox.com", "Dropbox", "192.0.2.11", 10, 20, "bob"
	b.Timestamp = a.Timestamp.Add(time.Hour)
	gap := Record{Timestamp: a.Timestamp, DeviceId: "dev-1", ActionType: ActionTelemetryGap, LostRecords: 40, GapReason: GapSpoolFull}
	body := gz(t, ndjson(a, b, gap))
	for i, want := range []int{201, 200, 200} {
		if code, msg := doPut(t, srv.URL+"/v1/telemetry/dev-1/chunk-1", body, nil); code != want {
			t.Fatalf("PUT #%d = %d %q, want %d", i+1, code, msg, want)
		}
	}
	// A restarted collector keeps the rollup and still answers 200.
	c2, _ := NewCollector(CollectorConfig{Dir: dir, Authorize: TokenAuthorizer("secret")})
	srv2 := httptest.NewServer(c2)
	defer srv2.Close()
	if code, _ := doPut(t, srv2.URL+"/v1/telemetry/dev-1/chunk-1", body, nil); code != 200 {
		t.Errorf("PUT after restart = %d, want 200", code)
	}
	ru, err := c2.Rollup("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if ru.Chunks != 1 || ru.Transactions != 2 || ru.BytesSent != 1010 || ru.BytesReceived != 5020 || ru.TotalBytes != 6030 || ru.LostRecords != 40 {
		t.Errorf("rollup totals = %+v", ru)
	}
	if len(ru.Names) != 2 || ru.Names["www.dropbox.com"].BytesReceived != 5000 || ru.Applications["Dropbox"].Transactions != 2 {
		t.Errorf("apps = %+v / %+v", ru.Names, ru.Applications)
	}
	if u := ru.Users["alice"]; u == nil || u.Transactions != 1 || ru.Users["bob"] == nil {
		t.Errorf("users = %+v", ru.Users)
	}
	if ip := ru.LocalIPs["192.0.2.11"]; ip == nil || !ip.FirstSeen.Equal(b.Timestamp) || len(ru.LocalIPs) != 2 {
		t.Errorf("IP history = %+v", ru.LocalIPs)
	}
	// GET returns the same rollup, with auth.
	req, _ := http.NewRequest("GET", srv2.URL+"/v1/telemetry/dev-1", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("GET without token = %v %v, want 401", resp.StatusCode, err)
	}
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET rollup = %v, %v", resp, err)
	}
	resp.Body.Close()
}

func TestCollectorNeedsAuth(t *testing.T) {
	if _, err := NewCollector(CollectorConfig{Dir: t.TempDir()}); err == nil {
		t.Error("NewCollector without Authorize succeeded, want an error")
	}
}

// TestCollectorPanicRecovered: a panic while serving one upload answers it
// 500 (the agent keeps the chunk and retries), is counted, and the
// collector goes on.
func TestCollectorPanicRecovered(t *testing.T) {
	panics := guard.New(nil)
	srv := newTestCollector(t, CollectorConfig{Panics: panics, Authorize: func(device, tok string) bool {
		if device == "crash" {
			panic("authorizer bug")
		}
		return tok == "secret"
	}})
	body := gz(t, ndjson(Record{Timestamp: time.Now().UTC(), DeviceId: "dev1", ActionType: ConnectionSuccess}))
	if code, _ := doPut(t, srv.URL+"/v1/telemetry/crash/c1", body, nil); code != http.StatusInternalServerError {
		t.Errorf("crash: %d, want 500", code)
	}
	if code, msg := doPut(t, srv.URL+"/v1/telemetry/dev1/c1", body, nil); code != http.StatusCreated {
		t.Errorf("after the panic: %d %s, want 201", code, msg)
	}
	if n := panics.Count("collector"); n != 1 {
		t.Errorf("counted %d panics, want 1", n)
	}
}

// A newer agent's chunk (an ActionType this collector does not know, with
// fields it does not know) is stored and counted, not refused: a 4xx would
// quarantine it on the agent for ever (CONTRACT §6 forward compatibility).
func TestCollectorAcceptsUnknownActionTypes(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCollector(CollectorConfig{Dir: dir, AllowAnyToken: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	future := `{"Timestamp":"2026-11-22T10:00:00Z","DeviceId":"dev-1","ActionType":"QuantumTunnelOpened","Qubits":7}` + "\n"
	dnsAns := rec(1)
	dnsAns.ActionType, dnsAns.RemoteUrl, dnsAns.RepeatCount = DnsQueryResponse, "example.com", 5
	info := Record{Timestamp: dnsAns.Timestamp, DeviceId: "dev-1", ActionType: DeviceInfo, OSPlatform: "linux",
		IPAddresses: []IPAddress{{Interface: "eth0", Address: "192.0.2.10", Mac: "02:00:00:00:00:01"}}, LoggedOnUsers: []string{"alice", ""}}
	body := append([]byte(future), ndjson(dnsAns, info)...)
	if code, msg := doPut(t, srv.URL+"/v1/telemetry/dev-1/c1", gz(t, body), nil); code != 201 {
		t.Fatalf("PUT with an unknown ActionType = %d %q, want 201", code, msg)
	}
	ru, err := c.Rollup("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if ru.UnknownActions["QuantumTunnelOpened"] != 1 {
		t.Errorf("unknownActions = %v, want QuantumTunnelOpened: 1", ru.UnknownActions)
	}
	if ru.Transactions != 5 || ru.Names["example.com"] == nil || ru.Names["example.com"].Transactions != 5 {
		t.Errorf("a DNS answer with RepeatCount 5 rolled up as %d transactions (names %v), want 5", ru.Transactions, ru.Names)
	}
	if ru.Info == nil || ru.Info.OSPlatform != "linux" || ru.Users["alice"] == nil || ru.LocalIPs["192.0.2.10"] == nil || ru.Users[""] != nil {
		t.Errorf("machine record not rolled up: info %+v users %v ips %v", ru.Info, ru.Users, ru.LocalIPs)
	}
	// Unknown fields on a known ActionType are still refused (a typo, not a future record).
	bad := `{"Timestamp":"2026-11-22T10:00:00Z","DeviceId":"dev-1","ActionType":"ConnectionSuccess","Evil":1}` + "\n"
	if code, _ := doPut(t, srv.URL+"/v1/telemetry/dev-1/c2", gz(t, []byte(bad)), nil); code != 400 {
		t.Errorf("unknown field on a known ActionType = %d, want 400", code)
	}
}
