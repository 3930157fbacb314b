package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/user"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/bypass"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/telemetry"

	"github.com/netward/netward/internal/e2e"
)

// testSink is a loopback address no other component or test uses.
const testSink = "127.77.0.154"

func warnPolicy(t *testing.T, blockWarned bool) *filter.Policy {
	t.Helper()
	act := filter.Warn
	if blockWarned {
		act = filter.Block
	}
	p, err := filter.Compile([]filter.Rule{
		{Value: "warned.test", Type: filter.TypeDomain, Action: act, ID: "1", Meta: &filter.RuleMeta{Title: "Monitored app: Demo", Application: "Demo"}},
		{Value: "demo-cdn.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "2", Meta: &filter.RuleMeta{Application: "Demo"}},
		{Value: "short.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "3", Meta: &filter.RuleMeta{BypassDuration: 2 * time.Second}},
		{Value: "feed.test", Type: filter.TypeDomain, Action: act, ID: "4"},
		{Value: "blocked.test", Type: filter.TypeDomain, Action: filter.Block, ID: "5"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type startedAgent struct {
	*Agent
	records chan telemetry.Record
	stop    func()
}

// startWarnAgent builds an agent on dir and runs only its warn component.
func startWarnAgent(t *testing.T, dir string, c *e2e.Clock) *startedAgent {
	t.Helper()
	cfg, err := parseConfig(t, []byte(`{"version":1,"dataDir":"`+dir+`","warn":{"sinkAddress":"`+testSink+`"}}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.now = c.Now
	a.dp.SetPolicy(warnPolicy(t, false))
	recs := make(chan telemetry.Record, 16)
	a.addSink(func(r telemetry.Record) { recs <- r })
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	if err := a.startWarn(gctx, g); err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := g.Wait(); err != nil {
				t.Errorf("warn component: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &startedAgent{a, recs, stop}
}

func TestBypassLifecycle(t *testing.T) {
	dir := t.TempDir()
	c := e2e.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	a := startWarnAgent(t, dir, c)

	// Refusals.
	for _, tc := range []struct {
		name string
		want error
	}{
		{"blocked.test", bypass.ErrBlock},
		{"www.blocked.test", bypass.ErrBlock},
		{"free.test", bypass.ErrNotWarned},
	} {
		if _, err := a.createBypass(tc.name, "", bypass.HowCLI); !errors.Is(err, tc.want) {
			t.Errorf("CreateBypass(%q) err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := a.createBypass("not a name!", "", bypass.HowCLI); err == nil {
		t.Error("CreateBypass accepted an invalid name")
	}

	if d := a.dp.DecideName("warned.test"); d.Verdict != filter.VerdictWarn {
		t.Fatalf("before: %v", d.Verdict)
	}
	e, err := a.createBypass("WWW.Warned.Test.", "alice", bypass.HowCLI)
	if err != nil {
		t.Fatal(err)
	}
	if e.Application != "Demo" || !e.Expires.Equal(c.Now().Add(24*time.Hour)) || e.Name != "www.warned.test" {
		t.Errorf("entry = %+v, want Demo for 24h", e)
	}
	r := <-a.records
	if r.ActionType != telemetry.NetworkProtectionUserBypassEvent || r.RemoteUrl != "www.warned.test" ||
		r.Application != "Demo" || r.IndicatorId != "1" || r.InitiatingProcessAccountName != "alice" {
		t.Errorf("bypass event = %+v", r)
	}
	// The application bypass covers the app's other domain, for the DNS
	// path (any user) and for alice, not for bob.
	for _, tc := range []struct {
		name, user string
		want       filter.Verdict
	}{
		{"warned.test", "", filter.VerdictBypassed},
		{"demo-cdn.test", "", filter.VerdictBypassed},
		{"demo-cdn.test", "alice", filter.VerdictBypassed},
		{"demo-cdn.test", "bob", filter.VerdictWarn},
		{"blocked.test", "", filter.VerdictBlock},
	} {
		if d := a.dp.Explain(filter.Target{Kind: filter.TargetName, Name: tc.name}, tc.user).Decision; d.Verdict != tc.want {
			t.Errorf("decision for %q as %q = %v, want %v", tc.name, tc.user, d.Verdict, tc.want)
		}
	}

	// Durations: indicator, then feed setting.
	e2, err := a.createBypass("short.test", "", bypass.HowPage)
	if err != nil || e2.Expires.Sub(e2.Created) != 2*time.Second {
		t.Errorf("short.test bypass = %+v %v, want 2s", e2, err)
	}
	<-a.records
	a.dp.Set(a.dp.State().Policy, filter.Settings{BypassDuration: 30 * time.Minute})
	e3, err := a.createBypass("feed.test", "", bypass.HowPage)
	if err != nil || e3.Expires.Sub(e3.Created) != 30*time.Minute {
		t.Errorf("feed.test bypass = %+v %v, want 30m", e3, err)
	}
	<-a.records
	if st := a.bypassStats(); st["Demo"] != 1 || st["short.test"] != 1 || st["feed.test"] != 1 {
		t.Errorf("BypassStats = %v", st)
	}

	// Expiry to the second.
	c.Add(2*time.Second - time.Nanosecond)
	if d := a.dp.DecideName("short.test"); d.Verdict != filter.VerdictBypassed {
		t.Errorf("1ns before expiry: %v", d.Verdict)
	}
	c.Add(time.Nanosecond)
	if d := a.dp.DecideName("short.test"); d.Verdict != filter.VerdictWarn {
		t.Errorf("at expiry: %v, want warn", d.Verdict)
	}

	// convertWarnToBlock disables bypassing, and new ones are refused.
	a.dp.Set(a.dp.State().Policy, filter.Settings{ConvertWarnToBlock: true})
	if d := a.dp.DecideName("warned.test"); d.Verdict != filter.VerdictBlock {
		t.Errorf("convertWarnToBlock: %v, want block", d.Verdict)
	}
	if _, err := a.createBypass("feed.test", "", bypass.HowCLI); !errors.Is(err, bypass.ErrBlock) {
		t.Errorf("convertWarnToBlock: CreateBypass err = %v", err)
	}
	a.dp.Set(a.dp.State().Policy, filter.Settings{})

	// Restart: the bypass survives.
	a.stop()
	a2 := startWarnAgent(t, dir, c)
	if d := a2.dp.DecideName("demo-cdn.test"); d.Verdict != filter.VerdictBypassed {
		t.Errorf("after restart: %v, want bypassed", d.Verdict)
	}
	if l := a2.listBypasses(); len(l) != 2 {
		t.Errorf("ListBypasses after restart = %+v, want Demo and feed.test", l)
	}

	// Indicators become Block: never applied; the indicator-keyed bypass is
	// pruned for good; the application bypass still covers the app's other,
	// still warned, domain.
	a2.dp.SetPolicy(warnPolicy(t, true))
	for name, want := range map[string]filter.Verdict{"warned.test": filter.VerdictBlock, "feed.test": filter.VerdictBlock, "demo-cdn.test": filter.VerdictBypassed} {
		if d := a2.dp.DecideName(name); d.Verdict != want {
			t.Errorf("after Warn→Block: %s is %v, want %v", name, d.Verdict, want)
		}
	}
	// The new policy is published; the warn component prunes on it.
	awaitChange(t, a2.dp, "the prune of feed.test", func() bool { return len(a2.listBypasses()) == 1 })
	a2.dp.SetPolicy(warnPolicy(t, false))
	if d := a2.dp.DecideName("feed.test"); d.Verdict != filter.VerdictWarn {
		t.Errorf("bypass came back after Block→Warn: %v", d.Verdict)
	}

	// Revoke by a name of the application.
	if n, err := a2.revokeBypass("demo-cdn.test"); err != nil || n != 1 {
		t.Errorf("RevokeBypass = %d %v, want 1", n, err)
	}
	if d := a2.dp.DecideName("warned.test"); d.Verdict != filter.VerdictWarn {
		t.Errorf("after revoke: %v", d.Verdict)
	}
}

func TestBypassForAllocs(t *testing.T) {
	c := e2e.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	a := startWarnAgent(t, t.TempDir(), c)
	if _, err := a.createBypass("warned.test", "", bypass.HowCLI); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { a.dp.DecideName("demo-cdn.test") }); n > 0 {
		t.Errorf("DecideName with a bypass allocates %v times", n)
	}
}

// With root, the pages are served on the sink address.
func TestPagesOnSink(t *testing.T) {
	e2e.Require(t) // binding port 80 needs root
	c := e2e.NewClock(time.Now())
	a := startWarnAgent(t, t.TempDir(), c)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Timeout: 5 * time.Second, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, testSink+":80")
			}}}
	resp, err := client.Get("http://warned.test/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "Continue to warned.test") {
		t.Fatalf("sink page: %d\n%s", resp.StatusCode, b)
	}
	tok := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(string(b))
	if tok == nil {
		t.Fatal("no token")
	}
	req, _ := http.NewRequest("POST", "http://warned.test/.netward/continue", strings.NewReader(url.Values{"token": {tok[1]}, "path": {"/x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://warned.test")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("Continue: %d", resp.StatusCode)
	}
	// The page knows which local account's socket connected: the bypass and
	// its event name it.
	me, _ := user.Current()
	l := a.listBypasses()
	if len(l) != 1 || l[0].Who != me.Username || l[0].How != bypass.HowPage {
		t.Errorf("bypasses = %+v, want one by %s from the page", l, me.Username)
	}
	if r := <-a.records; r.InitiatingProcessAccountName != me.Username || r.Source != telemetry.SourceHTTP {
		t.Errorf("bypass event = %+v", r)
	}
}

// TestBypassPrunedByBackToBackSets: a bypass of a Warn does not survive a
// Block set installed and replaced at once (Warn → Block → Warn): the prune
// happens in the call that installs the Block, not later in a goroutine
// (review of issue 15, finding 1; reproduced 30/30 before).
func TestBypassPrunedByBackToBackSets(t *testing.T) {
	c := e2e.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	a := startWarnAgent(t, t.TempDir(), c)
	for round := range 20 {
		installSet(a.Agent, "warn", c.Now(), warnPolicy(t, false))
		if _, err := a.createBypass("feed.test", "", bypass.HowCLI); err != nil {
			t.Fatal(err)
		}
		<-a.records
		installSet(a.Agent, "block", c.Now(), warnPolicy(t, true))
		installSet(a.Agent, "warn-again", c.Now(), warnPolicy(t, false))
		if d := a.dp.DecideName("feed.test"); d.Verdict != filter.VerdictWarn {
			t.Fatalf("round %d: feed.test is %v after Warn→Block→Warn, want warn (the bypass survived the Block)", round, d.Verdict)
		}
		for _, e := range a.listBypasses() {
			if e.Name == "feed.test" {
				t.Fatalf("round %d: bypass %+v survived the Block", round, e)
			}
		}
	}
}
