package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/consoletest"
	"github.com/netward/netward/console/store"
)

type fixture struct {
	st    *store.Store
	auth  *auth.Service
	in    *Ingest
	srv   *httptest.Server
	dir   string
	token string
}

// newFixture serves an Ingest on cfg.Store (a fresh SQLite store if nil)
// with device dev1 enrolled.
func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	st := cfg.Store
	if st == nil {
		st = consoletest.Store(t)
	}
	a := consoletest.Auth(st, auth.Config{})
	cat, _ := catalog.Parse("app\tdropbox\tCloud storage\tdropbox.com\n")
	m, _ := cat.NewMatcher()
	cfg.Store, cfg.Auth, cfg.Dir = st, a, t.TempDir()
	cfg.Matcher = func() Matcher { return m }
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok := consoletest.Enroll(t, a, "dev1")
	mux := http.NewServeMux()
	mux.Handle(Path, in)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{st: st, auth: a, in: in, srv: srv, dir: cfg.Dir, token: tok}
}

func gz(lines ...string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	for _, l := range lines {
		zw.Write([]byte(l + "\n"))
	}
	zw.Close()
	return b.Bytes()
}

func (f *fixture) put(t testing.TB, device, chunk string, body []byte) *http.Response {
	t.Helper()
	return f.putPath(t, device+"/"+chunk, body)
}

// putPath PUTs body to /v1/telemetry/<path> (path as sent, escapes kept).
func (f *fixture) putPath(t testing.TB, path string, body []byte) *http.Response {
	t.Helper()
	return f.putPathAs(t, f.token, path, body)
}

// putPathAs is putPath with the given token (the fixture is not changed:
// uploads still running in other goroutines read f.token).
func (f *fixture) putPathAs(t testing.TB, token, path string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/v1/telemetry/"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

const ts = "2026-12-01T10:15:00Z"

func rec(action, extra string) string {
	return `{"Timestamp":"` + ts + `","DeviceId":"dev1","DeviceName":"laptop","ActionType":"` + action + `"` + extra + `}`
}

func TestIngestCountsOnce(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	body := gz(
		rec("ConnectionSuccess", `,"RemoteUrl":"www.dropbox.com","BytesSent":100,"BytesReceived":1000,"InitiatingProcessAccountName":"alice","LocalIP":"192.0.2.10"`),
		rec("NetworkProtectionBlocked", `,"RemoteUrl":"dropbox.com","InitiatingProcessAccountName":"bob"`),
		rec("DnsQueryResponse", `,"RemoteUrl":"unknown.example","RepeatCount":5`),
		rec("SomethingFromTheFuture", `,"NewField":{"x":1}`),
		rec("DeviceInfo", `,"OSPlatform":"linux","OSVersion":"Debian 12","AgentVersion":"1.4","PolicySequence":3,"IPAddresses":[{"Interface":"eth0","Address":"192.0.2.10","Mac":"02:00:00:00:00:01"}],"LoggedOnUsers":["alice","carol"]`),
	)
	for i, want := range []int{201, 200, 200} {
		if got := f.put(t, "dev1", "c1", body).StatusCode; got != want {
			t.Fatalf("PUT #%d = %d, want %d", i+1, got, want)
		}
	}
	if got := f.put(t, "dev1", "c1", gz(rec("ConnectionSuccess", ""))).StatusCode; got != http.StatusConflict {
		t.Errorf("same id, other content = %d, want 409", got)
	}
	from, to := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	tr, err := f.st.DeviceTraffic(ctx, "dev1", from, to)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.TrafficTotal{}
	for _, r := range tr {
		got[r.AppID+"|"+r.Domain] = r
	}
	if d := got["dropbox|www.dropbox.com"]; d.Transactions != 1 || d.BytesReceived != 1000 || d.Users != 1 {
		t.Errorf("www.dropbox.com = %+v, want counted once with 1000 bytes in and 1 user", d)
	}
	if d := got["dropbox|dropbox.com"]; d.Blocks != 1 {
		t.Errorf("dropbox.com blocks = %+v", d)
	}
	if d := got["|unknown.example"]; d.Transactions != 5 {
		t.Errorf("unknown.example (RepeatCount 5) = %+v, want 5 transactions under no app", d)
	}
	acts, _ := f.st.DeviceActions(ctx, "dev1", from, to)
	if acts["SomethingFromTheFuture"] != 1 || acts["DeviceInfo"] != 1 {
		t.Errorf("actions = %v, want the unknown ActionType counted", acts)
	}
	if s := f.in.Stats(); s.Created != 1 || s.Duplicates != 2 || s.Conflicts != 1 || s.Records != 5 || s.UnknownActions != 1 {
		t.Errorf("stats = %+v", s)
	}
	d, _ := f.st.Device(ctx, "dev1")
	if d.OSVersion != "Debian 12" || strings.Join(d.LoggedOnUsers, ",") != "alice,carol" {
		t.Errorf("device info = %+v", d)
	}
	addrs, _ := f.st.DeviceSeen(ctx, "dev1", "addresses")
	if len(addrs) != 1 || addrs[0].Interface != "eth0" {
		t.Errorf("addresses = %+v", addrs)
	}
	users, _ := f.st.DeviceSeen(ctx, "dev1", "users")
	if len(users) != 3 {
		t.Errorf("users = %+v, want alice, bob, carol", users)
	}
	c, _ := f.st.Chunk(ctx, "dev1", "c1")
	raw, err := os.ReadFile(filepath.Join(f.dir, c.Path))
	if err != nil || !bytes.Equal(raw, body) {
		t.Errorf("raw chunk at %s: %v", c.Path, err)
	}
}

func TestIngestRefuses(t *testing.T) {
	f := newFixture(t, Config{MaxDecompressed: 1 << 20, MaxCompressed: 64 << 10})
	ctx := context.Background()
	ok := gz(rec("ConnectionSuccess", ""))
	tests := []struct {
		name   string
		device string
		body   []byte
		token  string
		want   int
	}{
		{"other device's path", "dev2", gz(strings.ReplaceAll(rec("ConnectionSuccess", ""), "dev1", "dev2")), "", 403},
		{"record of another device", "dev1", gz(strings.ReplaceAll(rec("ConnectionSuccess", ""), `"DeviceId":"dev1"`, `"DeviceId":"dev9"`)), "", 400},
		{"no token", "dev1", ok, "none", 401},
		{"shared token of the old collector", "dev1", ok, "s3cret", 401},
		{"not gzip", "dev1", []byte("plain"), "", 400},
		{"not json", "dev1", gz("{"), "", 400},
		{"no records", "dev1", gz(""), "", 400},
		{"no timestamp", "dev1", gz(`{"DeviceId":"dev1","ActionType":"ConnectionSuccess"}`), "", 400},
		{"bad port", "dev1", gz(rec("ConnectionSuccess", `,"RemotePort":70000`)), "", 400},
		{"gzip bomb", "dev1", gz(strings.Repeat(rec("ConnectionSuccess", `,"Pad":"`+strings.Repeat("x", 1000)+`"`)+"\n", 2000)), "", 413},
		{"only a line too long", "dev1", gz(rec("ConnectionSuccess", `,"Pad":"`+strings.Repeat("y", 70<<10)+`"`)), "", 400},
		{"body too large", "dev1", bytes.Repeat([]byte{1}, 65<<10), "", 413},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := f.token
			switch tt.token {
			case "none":
				f.token = ""
			case "":
			default:
				f.token = tt.token
			}
			defer func() { f.token = saved }()
			if got := f.put(t, tt.device, "x"+strconv.Itoa(i), tt.body).StatusCode; got != tt.want {
				t.Errorf("PUT = %d, want %d", got, tt.want)
			}
		})
	}
	if n, _, _ := f.st.ChunkStats(ctx, "dev1"); n != 0 {
		t.Errorf("%d refused chunks were stored", n)
	}
	// A revoked device is refused.
	if err := f.st.RevokeDevice(ctx, "dev1", "admin"); err != nil {
		t.Fatal(err)
	}
	f.auth.ForgetDevice("dev1")
	if got := f.put(t, "dev1", "after-revoke", ok).StatusCode; got != http.StatusForbidden {
		t.Errorf("revoked device PUT = %d, want 403", got)
	}
}

// One odd record never costs the chunk (review #9): a 1970 timestamp (a
// clock before NTP) is counted at the receipt time, and a broken line,
// another device's record or a line over MaxLine is skipped and counted by
// reason, while every good record of the chunk is counted.
func TestIngestSkipsBadRecordsKeepsGood(t *testing.T) {
	received := time.Date(2026, 12, 1, 10, 20, 0, 0, time.UTC)
	f := newFixture(t, Config{MaxLine: 4 << 10, Now: func() time.Time { return received }})
	ctx := context.Background()
	body := gz(
		rec("ConnectionSuccess", `,"RemoteUrl":"a.test"`),
		`{"Timestamp":"1970-01-01T00:00:05Z","DeviceId":"dev1","ActionType":"DnsQueryResponse","RemoteUrl":"b.test"}`,
		rec("NetworkProtectionBlocked", `,"RemoteUrl":"c.test"`),
		strings.ReplaceAll(rec("ConnectionSuccess", `,"RemoteUrl":"d.test"`), `"DeviceId":"dev1"`, `"DeviceId":"dev9"`),
		`{"Timestamp":`,
		rec("DeviceInfo", `,"Pad":"`+strings.Repeat("y", 8<<10)+`"`),
		rec("ConnectionSuccess", `,"RemoteUrl":"e.test","RemotePort":70000`),
		rec("ConnectionSuccess", `,"RemoteUrl":"f.test"`),
	)
	if got := f.put(t, "dev1", "mixed", body).StatusCode; got != http.StatusCreated {
		t.Fatalf("PUT of a chunk with odd records = %d, want 201", got)
	}
	tr, err := f.st.DeviceTraffic(ctx, "dev1", received.Add(-time.Hour), received.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range tr {
		got[r.Domain] = r.Transactions
	}
	want := map[string]int64{"a.test": 1, "b.test": 1, "c.test": 1, "f.test": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("transactions by domain = %v, want %v (the 1970 record at the receipt hour)", got, want)
	}
	s := f.in.Stats()
	wantSkip := map[string]int64{"otherDeviceId": 1, "malformed": 1, "lineTooLong": 1, "badPort": 1}
	if fmt.Sprint(s.SkippedRecords) != fmt.Sprint(wantSkip) || s.ClampedTimestamps != 1 || s.Records != 4 {
		t.Errorf("stats = %+v, want skipped %v, 1 clamped, 4 records", s, wantSkip)
	}
	if c, err := f.st.Chunk(ctx, "dev1", "mixed"); err != nil || c.Records != 4 {
		t.Errorf("chunk row = %+v, %v", c, err)
	}
}

// A DeviceInfo dated 9999 (a bad RTC) must not freeze the device's info
// (review #15): it is re-dated to its receipt, and a stored future one is
// replaced by the next real record.
func TestIngestFutureDeviceInfo(t *testing.T) {
	received := time.Date(2026, 12, 1, 10, 20, 0, 0, time.UTC)
	f := newFixture(t, Config{Now: func() time.Time { return received }})
	ctx := context.Background()
	future := `{"Timestamp":"9999-01-01T00:00:00Z","DeviceId":"dev1","ActionType":"DeviceInfo","OSVersion":"X-future","LoggedOnUsers":["mallory"]}`
	if got := f.put(t, "dev1", "fut", gz(future)).StatusCode; got != 201 {
		t.Fatalf("PUT = %d", got)
	}
	// A row frozen in the future by an older console.
	if err := f.st.IngestChunk(ctx, &store.ChunkBatch{Meta: store.ChunkMeta{DeviceID: "dev1", ChunkID: "old-console", SHA256: "x", ReceivedAt: received},
		Info: &store.DeviceInfo{At: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), OSVersion: "X-future"}}); err != nil {
		t.Fatal(err)
	}
	// The real record was made a second before the bad one was received.
	now := `{"Timestamp":"` + received.Add(-time.Second).Format(time.RFC3339) + `","DeviceId":"dev1","ActionType":"DeviceInfo","OSVersion":"Y-now","LoggedOnUsers":["alice"]}`
	received = received.Add(time.Minute)
	if got := f.put(t, "dev1", "nowinfo", gz(now)).StatusCode; got != 201 {
		t.Fatalf("PUT = %d", got)
	}
	d, _ := f.st.Device(ctx, "dev1")
	if !d.InfoAt.Equal(received) || strings.Join(d.LoggedOnUsers, ",") != "alice" {
		t.Errorf("device info at %s users %v; want the current record (%s, alice)", d.InfoAt, d.LoggedOnUsers, received)
	}
	from := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if acts, _ := f.st.DeviceActions(ctx, "dev1", from, from.Add(time.Hour)); len(acts) != 0 {
		t.Errorf("records counted in year 9999: %v", acts)
	}
}

// Ids "." and ".." are not ids (review #13): no upload path can put a file
// outside <date>/<device>/.
func TestIngestDotIDs(t *testing.T) {
	f := newFixture(t, Config{})
	for _, p := range []string{"%2E%2E/c1", "%2E/c1", "dev1/%2E%2E", "dev1/.hidden"} {
		if resp := f.putPath(t, p, gz(rec("ConnectionSuccess", ""))); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %s = %d, want 400", p, resp.StatusCode)
		}
	}
	for _, ids := range [][2]string{{"..", "c1"}, {".", "c1"}, {"dev1", ".."}, {"a/b", "c"}} {
		if rel, err := chunkPath(time.Now(), ids[0], ids[1]); err == nil {
			t.Errorf("chunkPath(%q, %q) = %q, want refused", ids[0], ids[1], rel)
		}
	}
	err := filepath.WalkDir(f.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("file written: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Past the memory budget an upload waits briefly, then gets 503 with a
// Retry-After the agent's uploader honours.
func TestIngestBusy(t *testing.T) {
	f := newFixture(t, Config{MemoryBudget: 1, AdmitWait: 50 * time.Millisecond, RetryAfter: 10 * time.Second})
	if err := f.in.budget.Acquire(context.Background(), f.in.cfg.MemoryBudget); err != nil {
		t.Fatal(err)
	}
	resp := f.put(t, "dev1", "busy", gz(rec("ConnectionSuccess", "")))
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusServiceUnavailable || ra < 10 || ra > 15 {
		t.Errorf("busy PUT = %d, Retry-After %q; want 503 with 10-15 s", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	f.in.budget.Release(f.in.cfg.MemoryBudget)
	if got := f.put(t, "dev1", "busy", gz(rec("ConnectionSuccess", ""))).StatusCode; got != 201 {
		t.Errorf("after the budget frees = %d, want 201", got)
	}
}

func TestExpire(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f := newFixture(t, Config{Retention: 24 * time.Hour, Now: func() time.Time { return now }})
	if got := f.put(t, "dev1", "old", gz(rec("ConnectionSuccess", `,"RemoteUrl":"dropbox.com"`))).StatusCode; got != 201 {
		t.Fatal(got)
	}
	c, _ := f.st.Chunk(context.Background(), "dev1", "old")
	now = now.Add(25 * time.Hour)
	n, err := f.in.Expire(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, c.Path)); !os.IsNotExist(err) {
		t.Errorf("raw chunk still there: %v", err)
	}
	tr, _ := f.st.DeviceTraffic(context.Background(), "dev1", now.Add(-48*time.Hour), now)
	if len(tr) != 1 {
		t.Errorf("aggregates after retention = %+v, want kept", tr)
	}
}

// BenchmarkIngestLargeChunks: six 52 KB uploads that decompress to 15 MiB
// each (the case that took the old collector from 18 MB to 744 MB).
func BenchmarkIngestLargeChunks(b *testing.B) {
	f := newFixture(b, Config{})
	line := rec("ConnectionSuccess", `,"RemoteUrl":"www.dropbox.com","BytesSent":1`)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	n := (15 << 20) / (len(line) + 1)
	for range n {
		zw.Write([]byte(line + "\n"))
	}
	zw.Close()
	body := buf.Bytes()
	b.ReportMetric(float64(len(body)), "compressed-bytes")
	b.ResetTimer()
	for i := range b.N {
		done := make(chan int, 6)
		for j := range 6 {
			go func() { done <- f.put(b, "dev1", fmt.Sprintf("b%d-%d", i, j), body).StatusCode }()
		}
		for range 6 {
			if c := <-done; c != 201 && c != 413 {
				b.Fatalf("PUT = %d", c)
			}
		}
	}
}

// putAs is put with another device's token.
func (f *fixture) putAs(t testing.TB, token, device, chunk string, body []byte) int {
	t.Helper()
	return f.putPathAs(t, token, device+"/"+chunk, body).StatusCode
}

// The aggregates of a chunk are charged to the memory budget as they grow
// and capped per chunk (review #5): a chunk of 6,000 distinct domains and
// users cannot be taken while the budget has room only for an ordinary
// chunk, which still can; and taken, its keys past the caps are folded.
func TestIngestChargesAggregates(t *testing.T) {
	f := newFixture(t, Config{AdmitWait: 50 * time.Millisecond})
	f.in.caps = keyCaps{traffic: 4000, users: 4000, actions: 100, seen: 1000}
	maxTrafficKeys, maxSeenKeys := f.in.caps.traffic, f.in.caps.seen
	// The folding itself (rows under "(other)") is TestBatchFolds'.
	ctx := context.Background()
	lines := make([]string, 6000)
	for i := range lines {
		lines[i] = rec("ConnectionSuccess", fmt.Sprintf(`,"RemoteUrl":"h%d.example.test","InitiatingProcessAccountName":"user%d","LocalIP":"10.0.%d.%d"`, i, i, i>>8, i&255))
	}
	bomb := gz(lines...)
	// Leave room for a working set, the body and 1 MiB of aggregates.
	room := int64(perUpload + bodyBlock*(len(bomb)/bodyBlock+2) + aggregateStep)
	held := f.in.cfg.MemoryBudget - room
	if err := f.in.budget.Acquire(ctx, held); err != nil {
		t.Fatal(err)
	}
	if got := f.put(t, "dev1", "bomb", bomb).StatusCode; got != http.StatusServiceUnavailable {
		t.Errorf("a chunk whose aggregates outgrow the budget = %d, want 503", got)
	}
	if got := f.put(t, "dev1", "small", gz(rec("ConnectionSuccess", `,"RemoteUrl":"www.dropbox.com"`))).StatusCode; got != 201 {
		t.Errorf("an ordinary chunk beside it = %d, want 201", got)
	}
	f.in.budget.Release(held)
	if got := f.put(t, "dev1", "bomb", bomb).StatusCode; got != 201 {
		t.Fatalf("the chunk with the budget free = %d", got)
	}
	if !f.in.budget.TryAcquire(f.in.cfg.MemoryBudget) {
		t.Error("budget not released after the uploads")
	}
	// Every transaction is counted (DeviceActions: a cheap query; the
	// per-domain view's user subquery is quadratic under the race detector).
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if acts, _ := f.st.DeviceActions(ctx, "dev1", from, from.Add(24*time.Hour)); acts["ConnectionSuccess"] != 6001 {
		t.Errorf("records counted = %v, want 6001 ConnectionSuccess", acts)
	}
	if n, _, _ := f.st.ChunkStats(ctx, "dev1"); n != 2 {
		t.Errorf("%d chunks stored, want 2", n)
	}
	if users, _ := f.st.DeviceSeen(ctx, "dev1", "users"); len(users) > maxSeenKeys {
		t.Errorf("%d device users kept from one chunk, want at most %d", len(users), maxSeenKeys)
	}
	if s := f.in.Stats(); s.FoldedRecords != int64(6000-maxTrafficKeys) {
		t.Errorf("folded = %d", s.FoldedRecords)
	}
}

// slowPUT sends the headers of an upload of size bytes, then one byte
// every 100 ms; it returns the status line the console answers.
func (f *fixture) slowPUT(t *testing.T, chunk string, size int) <-chan string {
	status := make(chan string, 1)
	token := f.token
	go func() {
		c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
		if err != nil {
			status <- err.Error()
			return
		}
		defer c.Close()
		t.Cleanup(func() { c.Close() }) // end the held upload with the test
		fmt.Fprintf(c, "PUT /v1/telemetry/dev1/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Encoding: gzip\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n", chunk, token, size)
		go func() {
			for range 50 {
				if _, err := c.Write([]byte{0x1f}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		status <- strings.TrimSpace(line)
	}()
	return status
}

func statusCode(line string) string { return strings.Fields(line + " ? ?")[1] }

// Slow uploads from one device token cannot hold the budget and stop the
// fleet's ingest (review #6): one upload per device at a time, its body
// charged as it arrives.
func TestIngestSlowUploadsDoNotStarveOthers(t *testing.T) {
	f := newFixture(t, Config{AdmitWait: 100 * time.Millisecond})
	tok2 := consoletest.Enroll(t, f.auth, "dev2")
	var slow []<-chan string
	for i := range 8 {
		slow = append(slow, f.slowPUT(t, fmt.Sprintf("slow%d", i), 8<<20))
	}
	time.Sleep(400 * time.Millisecond)
	for i := range 3 {
		if got := f.putAs(t, tok2, "dev2", fmt.Sprintf("ok%d", i), gz(strings.ReplaceAll(rec("ConnectionSuccess", ""), "dev1", "dev2"))); got != 201 {
			t.Errorf("another device's upload during dev1's slow ones = %d, want 201", got)
		}
	}
	busy := 0
	for _, ch := range slow {
		select {
		case s := <-ch:
			if statusCode(s) == "503" {
				busy++
			}
		case <-time.After(2 * time.Second):
		}
	}
	if busy != 7 {
		t.Errorf("%d of dev1's 8 concurrent uploads answered 503, want 7 (one at a time)", busy)
	}
}

// A trickling upload is cut with 408 (the agent retries) instead of
// holding its device's slot for the server's whole read timeout.
func TestIngestTrickleCut(t *testing.T) {
	f := newFixture(t, Config{})
	f.in.bodyGrace = 300 * time.Millisecond
	start := time.Now()
	if s := <-f.slowPUT(t, "trickle", 64<<10); statusCode(s) != "408" || time.Since(start) > 5*time.Second {
		t.Errorf("trickle answered %q after %s, want 408 within the grace plus 64 KiB at 32 KiB/s", s, time.Since(start))
	}
}

// Past the caps, keys are folded: traffic under "(other)" of its hour,
// users and addresses not kept, every record still counted.
func TestBatchFolds(t *testing.T) {
	b := newBatch(nil)
	b.caps = keyCaps{traffic: 10, users: 10, actions: 3, seen: 5}
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 30 {
		r := &record{}
		r.Timestamp, r.ActionType = at, "ConnectionSuccess"
		if i%2 == 1 {
			r.ActionType = fmt.Sprintf("Custom%d", i)
		}
		r.RemoteUrl, r.InitiatingProcessAccountName, r.LocalIP = fmt.Sprintf("h%d.test", i), fmt.Sprintf("u%d", i), fmt.Sprintf("192.0.2.%d", i)
		b.add(r)
	}
	var total int64
	for _, c := range b.Traffic {
		total += c.Transactions
	}
	other := b.Traffic[store.TrafficKey{Hour: store.HourOf(at), Domain: OtherKey}]
	if len(b.Traffic) != 11 || other == nil || other.Transactions != 5 || total != 15 {
		t.Errorf("traffic: %d keys, total %d, (other) %+v; want 10 + (other) with 5 of 15", len(b.Traffic), total, other)
	}
	if len(b.Users) != 10 || len(b.People) != 5 || len(b.Addresses) != 5 {
		t.Errorf("users %d, people %d, addresses %d; want 10, 5, 5", len(b.Users), len(b.People), len(b.Addresses))
	}
	if n := b.Actions[store.ActionKey{Hour: store.HourOf(at), ActionType: OtherKey}]; n != 13 || len(b.Actions) != 4 {
		t.Errorf("actions = %v, want 3 kept and 13 under (other)", b.Actions)
	}
	if b.records != 30 || b.folded != 5+13 || b.mem <= 0 {
		t.Errorf("records %d, folded %d, mem %d", b.records, b.folded, b.mem)
	}
}

// BenchmarkParseChunk: what the console does with a full 4,000-record
// chunk before the database (decompress, decode, match, aggregate), on
// records shaped like an agent's — the CPU issue 22 measures per record.
func BenchmarkParseChunk(b *testing.B) {
	f := newFixture(b, Config{})
	lines := make([]string, 4000)
	for i := range lines {
		lines[i] = rec([]string{"ConnectionSuccess", "DnsQueryResponse", "NetworkProtectionBlocked"}[i%3],
			fmt.Sprintf(`,"RemoteIP":"198.51.100.%d","RemotePort":443,"RemoteUrl":"h%d.cdn%d.example.com","LocalIP":"192.0.2.10","LocalPort":%d,"Protocol":"Tcp","BytesSent":%d,"BytesReceived":%d,"InitiatingProcessId":%d,"InitiatingProcessFileName":"firefox","InitiatingProcessAccountName":"CORP\\user%d","Source":"sni"`,
				i%250, i%97, i%13, 40000+i, 300+i, 9000+7*i, 1000+i%40, i%5))
	}
	body := gz(lines...)
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ch := &charge{in: f.in, ctx: ctx}
		if _, err := f.in.parse(bytes.NewReader(body), "dev1", time.Now(), ch); err != nil {
			b.Fatal(err)
		}
		ch.release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/record")
}
