package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/indicators"
	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry"
)

// indicatorAgent builds an agent on dataDir following source, with the DNS
// proxy on an ephemeral loopback port and no root-only component.
func indicatorAgent(t *testing.T, dataDir, source string, logs *e2e.SyncBuf) *Agent {
	t.Helper()
	cfg, err := parseConfig(t, []byte(fmt.Sprintf(`{"version": 1, "dataDir": %q, "mode": "block",
		"indicators": {"source": %q, "longPollSeconds": 30},
		"dns": {"capture": false, "listen": ["127.0.0.1:0"], "upstreams": ["192.0.2.53:53"]},
		"sni": {"enabled": false}, "warn": {"sinkAddress": "127.77.3.154"}}`, dataDir, source)), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.tel.noFlows = true
	a.ind.fileInterval = 5 * time.Millisecond
	return a
}

// runIndicators runs the agent's indicators component alone — nothing that
// waits on a socket, so a test may run it in a synctest bubble — and
// returns a stop that ends it and waits for it.
func runIndicators(t *testing.T, a *Agent) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	if err := a.startIndicators(gctx, g); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("indicators component: %v", err)
		}
	}
}

func runAgent(t *testing.T, a *Agent) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func writeIndicators(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

const feedV1 = `{"version": "v1", "settings": {"mode": "audit", "warnRedirectUrl": "https://intranet.example/apps"},
 "indicators": [
  {"id": "1", "indicatorValue": "blocked.test", "indicatorType": "DomainName", "action": "Block"},
  {"id": "2", "indicatorValue": "warned.test", "indicatorType": "DomainName", "action": "Warn", "application": "Demo"},
  {"id": "3", "indicatorValue": "http://blocked.test/path", "indicatorType": "Url", "action": "Block"},
  {"id": "4", "indicatorValue": "bad name!", "indicatorType": "DomainName", "action": "Block"}]}`

// The agent follows a file:// source: the set is in force with its
// settings, an edit is applied once the file has been still for the watch
// interval, and after a restart with the source unreachable the stored set
// is enforced before the sync starts. The indicators component runs in a
// synctest bubble: the watch interval passes on the bubble's clock, so the
// edit is seen after exactly two intervals, whatever the machine's load.
func TestAgentIndicatorsFileSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		src := filepath.Join(dir, "indicators.json")
		writeIndicators(t, src, feedV1)
		var logs e2e.SyncBuf
		a := indicatorAgent(t, data, "file://"+filepath.ToSlash(src), &logs)
		stop := runIndicators(t, a)
		synctest.Wait() // the file is read and applied at start

		if v := a.indicatorStatus().Version; v != "v1" {
			t.Fatalf("version %q in force after the start, want the file's v1", v)
		}
		if d := a.dp.DecideName("www.blocked.test"); d.Match.Rule == nil || d.Match.Rule.ID != "1" || d.Verdict != filter.VerdictAudit {
			t.Errorf("www.blocked.test in feed mode audit: %+v, want rule 1 audited", d)
		}
		s := a.dp.State().Settings
		if s.Mode != filter.ModeAudit || s.WarnRedirectURL != "https://intranet.example/apps" {
			t.Errorf("settings = %+v, want the feed's mode audit and warn URL", s)
		}
		st := a.indicatorStatus()
		if st.Counts.Indicators != 3 || st.Counts.ByAction["Block"] != 2 || st.Counts.ByAction["Warn"] != 1 ||
			st.Counts.ByType["Url"] != 1 || st.Counts.HTTPOnly != 1 || st.Counts.Errors != 1 || st.FromStore {
			t.Errorf("status = %+v", st)
		}
		for _, want := range []string{"indicator set loaded", "version=v1", "rejected=1", "indicator problem", "bad name!"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}

		// An edit (now a hosts file, Warn turned off) is applied: the
		// watch sees the change at one tick and applies it at the next,
		// the file having stayed still; the feed settings are gone, so
		// the config's mode applies again.
		writeIndicators(t, src, "0.0.0.0 other.test\n")
		time.Sleep(3 * a.ind.fileInterval) // a tick sees the change, the next sees the file still
		synctest.Wait()
		if d := a.dp.DecideName("other.test"); d.Verdict != filter.VerdictBlock {
			t.Fatalf("other.test %v two watch intervals after the edit, want block", d.Verdict)
		}
		if d := a.dp.DecideName("blocked.test"); d.Match.Rule != nil {
			t.Errorf("blocked.test still matches %+v after the edit", d.Match.Rule)
		}
		stop()

		// Restart with a feed that cannot be reached: the stored set (the
		// edited file) is enforced as soon as the component has started,
		// before any fetch.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := "http://" + ln.Addr().String() + "/v1/indicators"
		ln.Close()
		a2 := indicatorAgent(t, data, down, &logs)
		ctx, cancel := context.WithCancel(context.Background())
		g, gctx := errgroup.WithContext(ctx)
		if err := a2.startIndicators(gctx, g); err != nil {
			t.Fatal(err)
		}
		if d := a2.dp.DecideName("other.test"); d.Verdict != filter.VerdictBlock {
			t.Errorf("restart with the source down: other.test %v, want the stored Block", d.Verdict)
		}
		if st := a2.indicatorStatus(); !st.FromStore || st.Source != down {
			t.Errorf("status after restart = %+v", st)
		}
		synctest.Wait() // the first fetch has failed; the sync waits out its back-off
		if st := a2.indicatorStatus(); st.Failures == 0 {
			t.Errorf("status after the first fetch = %+v, want a failure", st)
		}
		if d := a2.dp.DecideName("other.test"); d.Verdict != filter.VerdictBlock {
			t.Errorf("after a failed fetch: other.test %v, want the stored Block", d.Verdict)
		}
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("indicators component: %v", err)
		}

		// Restart on the unchanged file: the stored set is restored, and
		// once the file has been read (same content, nothing re-applied)
		// status no longer says it comes from the store.
		stored := a2.indicatorStatus().Version
		a3 := indicatorAgent(t, data, "file://"+filepath.ToSlash(src), &logs)
		stop3 := runIndicators(t, a3)
		defer stop3()
		synctest.Wait()
		if st := a3.indicatorStatus(); st.LastCheck.IsZero() || st.FromStore || st.Version != stored {
			t.Errorf("after a restart on the same file: %+v, want %q confirmed by the file", st, stored)
		}
	})
}

// A corrupt store is moved aside with a log line; the agent starts and
// enforces what its source gives.
func TestAgentIndicatorsCorruptStore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, indicatorStoreFile), bytes.Repeat([]byte("garbage "), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "list.txt")
	writeIndicators(t, src, "blocked.test\n")
	var logs e2e.SyncBuf
	a := indicatorAgent(t, data, "file://"+filepath.ToSlash(src), &logs)
	stop := runIndicators(t, a)
	defer stop()
	// The file is read at start, before startIndicators returns.
	awaitChange(t, a.dp, "the file's set", func() bool { return a.dp.DecideName("blocked.test").Verdict == filter.VerdictBlock })
	if !strings.Contains(logs.String(), "moved aside") {
		t.Errorf("no log line about the corrupt store:\n%s", logs.String())
	}
	m, _ := filepath.Glob(filepath.Join(data, indicatorStoreFile+".corrupt-*"))
	if len(m) != 1 {
		t.Errorf("corrupt store not moved aside: %v", m)
	}
}

// An indicator stops applying at its expirationTime: the policy is compiled
// again by a timer at that instant (on the synctest bubble's clock), and
// status shows the next expiry until then.
func TestAgentIndicatorExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "indicators.json")
		exp := time.Now().Add(400 * time.Millisecond).UTC()
		writeIndicators(t, src, fmt.Sprintf(`{"version": "e1", "indicators": [
		  {"id": "1", "indicatorValue": "short.test", "indicatorType": "DomainName", "action": "Block", "expirationTime": %q},
		  {"id": "2", "indicatorValue": "long.test", "indicatorType": "DomainName", "action": "Block"}]}`, exp.Format(time.RFC3339Nano)))
		var logs e2e.SyncBuf
		a := indicatorAgent(t, filepath.Join(dir, "data"), "file://"+filepath.ToSlash(src), &logs)
		stop := runIndicators(t, a)
		defer stop()
		synctest.Wait()
		st := a.indicatorStatus()
		if st.Version != "e1" || !st.NextExpiry.Equal(exp) || st.Counts.Indicators != 2 {
			t.Errorf("before expiry: status %+v, want e1, next expiry %v and 2 indicators", st, exp)
		}
		time.Sleep(time.Until(exp) - time.Nanosecond)
		synctest.Wait()
		if d := a.dp.DecideName("short.test"); d.Verdict != filter.VerdictBlock {
			t.Errorf("short.test %v a nanosecond before its expiry, want block", d.Verdict)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if d := a.dp.DecideName("short.test"); d.Match.Rule != nil {
			t.Errorf("short.test still matches at its expiry: %+v", d.Match.Rule)
		}
		if d := a.dp.DecideName("long.test"); d.Verdict != filter.VerdictBlock {
			t.Errorf("long.test %v after the other expired", d.Verdict)
		}
		st = a.indicatorStatus()
		if !st.NextExpiry.IsZero() || st.Counts.Indicators != 1 || st.Counts.Expired != 1 {
			t.Errorf("after expiry: %+v", st)
		}
		if !strings.Contains(logs.String(), "indicators expired; policy recompiled") {
			t.Errorf("no log line for the recompile:\n%s", logs.String())
		}
	})
}

// The embedded default config (CONTRACT §3) runs the demo set built into
// the binary.
func TestDefaultConfigRunsBuiltinDemo(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Indicators.Source != indicators.BuiltinDemo {
		t.Fatalf("default source %q, want %q", cfg.Indicators.Source, indicators.BuiltinDemo)
	}
	var logs e2e.SyncBuf
	a := indicatorAgent(t, t.TempDir(), cfg.Indicators.Source, &logs)
	stop := runIndicators(t, a)
	defer stop()
	awaitChange(t, a.dp, "the demo set", func() bool { return a.dp.DecideName("blocked.netward.example").Verdict == filter.VerdictBlock })
	if st := a.indicatorStatus(); st.Counts.Errors != 0 || st.Counts.Indicators == 0 {
		t.Errorf("demo status %+v", st)
	}
}

// A public key that is not one is a configuration error, named.
func TestAgentIndicatorsBadPublicKey(t *testing.T) {
	cfg, err := parseConfig(t, []byte(`{"version":1,"dataDir":"`+filepath.ToSlash(t.TempDir())+`","indicators":{"source":"https://console.example/v1/indicators","publicKey":"bm90IGEga2V5"}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, ctx := errgroup.WithContext(context.Background())
	err = a.startIndicators(ctx, g)
	if err == nil || !strings.Contains(err.Error(), "indicators.publicKey") {
		t.Errorf("startIndicators = %v, want an error naming indicators.publicKey", err)
	}
}

// TestAgentIndicatorsReloadAndStatus: `netward status` reports the set the
// sync put in force, `netward indicators reload` reads the source at once,
// and a broken source shows in status while the last good set stays.
func TestAgentIndicatorsReloadAndStatus(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "indicators.json")
	writeIndicators(t, src, feedV1)
	var logs e2e.SyncBuf
	a := indicatorAgent(t, filepath.Join(dir, "data"), "file://"+filepath.ToSlash(src), &logs)
	stop := runIndicators(t, a)
	defer stop()
	awaitChange(t, a.dp, "the file's set", func() bool { return a.indicatorStatus().Version == "v1" })

	st := a.controlStatus().Indicators
	if st.Version != "v1" || st.Total != 3 || st.Rejected != 1 || st.FromStore || st.LastError != "" || st.LoadedAt.IsZero() {
		t.Errorf("status indicators = %+v", st)
	}

	writeIndicators(t, src, `{"indicators": [`) // broken
	if err := a.reload(context.Background()); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	st = a.controlStatus().Indicators
	if st.Version != "v1" || st.LastError == "" || st.Failures == 0 {
		t.Errorf("after a failed reload: %+v, want v1 in force and the error shown", st)
	}
	if d := a.dp.DecideName("blocked.test"); d.Match.Rule == nil {
		t.Error("the last good set is no longer enforced after a failed reload")
	}

	writeIndicators(t, src, `{"version": "v2", "indicators": [{"id": "9", "indicatorValue": "new.test", "indicatorType": "DomainName", "action": "Block"}]}`)
	if err := a.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Synchronous: no waiting for the file watch.
	if st := a.controlStatus().Indicators; st.Version != "v2" || st.Total != 1 || st.LastError != "" {
		t.Errorf("after reload: %+v", st)
	}
	if d := a.dp.DecideName("new.test"); d.Verdict != filter.VerdictBlock {
		t.Errorf("new.test after reload: %v", d.Verdict)
	}
}

// TestAgentBrokenFileKeepsBlocking is issue 14 §3 as the reviewer ran it: a
// file:// CSV blocking shop.test is replaced by the header and one row with
// a stray quote. shop.test stays blocked, `netward status` names the error
// (under the indicators and under "errors"), and reload fails.
func TestAgentBrokenFileKeepsBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "indicators.csv")
		const header = "IndicatorType,IndicatorValue,Action\n"
		writeIndicators(t, src, header+"DomainName,shop.test,Block\n")
		var logs e2e.SyncBuf
		a := indicatorAgent(t, filepath.Join(dir, "data"), "file://"+filepath.ToSlash(src), &logs)
		stop := runIndicators(t, a)
		defer stop()
		synctest.Wait()
		if d := a.dp.DecideName("shop.test"); d.Verdict != filter.VerdictBlock {
			t.Fatalf("shop.test is %v after the start, want the file's Block", d.Verdict)
		}

		writeIndicators(t, src, header+"DomainName,\"oops,Block\n")
		time.Sleep(3 * a.ind.fileInterval) // the watch sees the change, then the file still
		synctest.Wait()
		if d := a.dp.DecideName("shop.test"); d.Verdict != filter.VerdictBlock {
			t.Fatalf("shop.test is %v after the broken file; the last good set must stay", d.Verdict)
		}
		st := a.controlStatus()
		if !strings.Contains(st.Indicators.LastError, "every entry of the new set is invalid") || st.Indicators.Total != 1 {
			t.Errorf("status indicators = %+v", st.Indicators)
		}
		if len(st.Errors) == 0 || st.Errors[0].Component != "indicators" || !strings.Contains(st.Errors[0].Message, "last good set stays") {
			t.Errorf("status errors = %+v, want the refusal", st.Errors)
		}
		if err := a.reload(context.Background()); err == nil {
			t.Error("reload of the broken file succeeded; `netward indicators reload` must exit 1")
		}
	})
}

// TestAgentFeedStaleReported is issue 14 §2 in the agent: a feed set whose
// last proof of freshness is older than indicators.maxAgeHours stays in
// force and is reported stale — status (with the error listed), the
// metric, and a telemetry record (repeated hourly); a current proof makes
// it fresh again, recorded too.
func TestAgentFeedStaleReported(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	clk := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	h := indicators.NewHandler(indicators.HandlerConfig{Key: priv, Now: clk})
	if err := h.SetDocument(indicators.Document{Sequence: 4, GeneratedAt: t0, Indicators: []indicators.DocIndicator{
		{ID: "1", IndicatorValue: "blocked.test", IndicatorType: "DomainName", Action: "Block"}}}); err != nil {
		t.Fatal(err)
	}
	var frozen atomic.Bool // the path answers 304 without a proof, for ever
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if frozen.Load() && r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg, err := parseConfig(t, fmt.Appendf(nil, `{"version": 1, "dataDir": %q,
		"indicators": {"source": %q, "publicKey": %q, "longPollSeconds": 1, "maxAgeHours": 72},
		"dns": {"listen": ["127.0.0.1:0"], "upstreams": ["192.0.2.53:53"]}, "warn": {"sinkAddress": "127.77.3.154"}}`,
		filepath.Join(dir, "data"), srv.URL+"/v1/indicators", pub), "test")
	if err != nil {
		t.Fatal(err)
	}
	var logs e2e.SyncBuf
	a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.now = clk
	a.tel.noFlows = true
	a.ind.freshEvery = time.Hour // checkFreshness is called by hand below
	stop := runAgent(t, a)
	defer stop()
	awaitChange(t, a.dp, "the feed's set", func() bool { return a.dp.DecideName("blocked.test").Verdict == filter.VerdictBlock })
	log := slog.New(slog.NewTextHandler(&logs, nil))
	m := newMetrics(a)
	gauge := func(name string) float64 {
		mfs, err := m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("metric %s missing", name)
		return 0
	}
	records := func(action string) int {
		n := 0
		for _, r := range a.ctl.ring.Since(time.Time{}) {
			if r.ActionType == action {
				n++
				if r.PolicySequence != 4 || r.PolicyVersion == "" {
					t.Errorf("record %+v lacks the sequence or version", r)
				}
			}
		}
		return n
	}
	a.checkFreshness(log)
	if st := a.controlStatus().Indicators; st.Stale || st.Sequence != 4 || st.MaxAgeHours != 72 || gauge("netward_indicator_set_stale") != 0 {
		t.Fatalf("fresh set: %+v", st)
	}

	// Freeze the path, and once its first answer is in (the long poll in
	// flight before got a real proof), let 73 hours pass.
	frozen.Store(true)
	// The agent's long poll is answered by a real HTTP server: poll its
	// status (no signal crosses that boundary).
	e2e.WaitFor(t, "an answer from the frozen path", 20*time.Second, func() bool {
		return a.indicatorStatus().FreshnessError != ""
	}, &logs)
	advance(73 * time.Hour)
	a.checkFreshness(log)
	st := a.controlStatus()
	if !st.Indicators.Stale || gauge("netward_indicator_set_stale") != 1 || gauge("netward_indicator_set_sequence") != 4 {
		t.Fatalf("after 73 h behind a frozen path: %+v", st.Indicators)
	}
	if a.dp.DecideName("blocked.test").Verdict != filter.VerdictBlock {
		t.Error("a stale set must stay in force")
	}
	if len(st.Errors) == 0 || !strings.Contains(st.Errors[0].Message, "is stale") {
		t.Errorf("status errors = %+v", st.Errors)
	}
	if n := records(telemetry.ActionIndicatorSetStale); n != 1 {
		t.Errorf("%d stale records, want 1", n)
	}
	a.checkFreshness(log) // within the hour: not repeated
	advance(time.Hour)
	a.checkFreshness(log) // an hour later: repeated
	if n := records(telemetry.ActionIndicatorSetStale); n != 2 {
		t.Errorf("%d stale records after an hour, want 2", n)
	}

	frozen.Store(false)
	e2e.WaitFor(t, "a current proof", 20*time.Second, func() bool { return !a.indicatorStatus().Stale }, &logs)
	a.checkFreshness(log)
	if n := records(telemetry.ActionIndicatorSetFresh); n != 1 || gauge("netward_indicator_set_stale") != 0 {
		t.Errorf("fresh again: %d records", n)
	}
}

// awaitChange waits until cond holds, checking it again at every change
// the decision point publishes (a policy, the settings, a bypass) rather
// than on a timer. The limit is a failure bound, not a timing check.
func awaitChange(t *testing.T, dp *filter.DecisionPoint, what string, cond func() bool) {
	t.Helper()
	limit := time.NewTimer(20 * time.Second)
	defer limit.Stop()
	for {
		changed := dp.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-limit.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// installSet puts policy p in force as the indicator component does when it
// loads set version generated at generated.
func installSet(a *Agent, version string, generated time.Time, p *filter.Policy) {
	a.applyIndicators(a.log, indicators.Update{Version: version, FetchedAt: a.now(), Policy: p,
		Set: &indicators.Set{Version: version, GeneratedAt: generated}})
}
