//go:build linux

// Package uie2e drives the console's web UI (issue 19) in headless Chromium
// against real processes: netward-console serve and an enrolled `netward
// run` agent on loopback. An admin signs in, creates the enrollment key in
// the browser, sees the machine appear, tags an app Monitored, bypasses the
// warning on the agent, sees the bypass and its user in the app's drawer,
// tags the app Unsanctioned on the Discovered apps page and sees `dig`
// through the agent blocked within 2 s, then the alert, and exports the
// apps as CSV. A viewer has no tag controls and its tag POST is refused.
package uie2e

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/internal/e2e/browser"
)

var bw = browser.New(browser.Config{IgnoreCertErrors: true, Timeout: 8 * time.Minute, ActionTimeout: 45 * time.Second,
	ScreenshotDir: filepath.Join("..", "..", "..", "docs", "console-ui")})

func TestMain(m *testing.M) {
	code := e2e.Main(m)
	bw.Close()
	os.Exit(code)
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

var (
	statusRE = regexp.MustCompile(`status: (\w+)`)
	edeRE    = regexp.MustCompile(`EDE: 15 \(Blocked\)`)
)

func blocked(port int, name string) bool {
	out, _ := exec.Command("dig", "+tries=1", "+time=1", "-p", strconv.Itoa(port), "@127.0.0.1", name, "A").CombinedOutput()
	st := statusRE.FindSubmatch(out)
	return st != nil && string(st[1]) == "NXDOMAIN" && edeRE.Match(out)
}

// reloadUntil reloads url until the JavaScript expression holds.
func reloadUntil(t *testing.T, p *browser.Page, what, url, expr string, limit time.Duration, logs ...*e2e.SyncBuf) {
	t.Helper()
	e2e.WaitFor(t, what, limit, func() bool {
		p.Go(url)
		var ok bool
		p.Eval("!!("+expr+")", &ok)
		if !ok {
			time.Sleep(300 * time.Millisecond)
		}
		return ok
	}, logs...)
}

func TestConsoleUIStory(t *testing.T) {
	if os.Getenv("NETWARD_E2E") == "off" {
		t.Skip("NETWARD_E2E=off")
	}
	if _, err := exec.LookPath("dig"); err != nil {
		if os.Getenv("NETWARD_E2E") == "require" {
			t.Fatal("the UI end-to-end test needs dig (apt-get install dnsutils)")
		}
		t.Skip("the UI end-to-end test needs dig (apt-get install dnsutils)")
	}
	consoleBin := e2e.Build(t, "github.com/netward/netward/cmd/netward-console")
	agentBin := e2e.Build(t, "github.com/netward/netward/cmd/netward")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "console")
	cfgPath := filepath.Join(dir, "console.json")
	writeJSON(t, cfgPath, map[string]any{"dataDir": dataDir, "listen": "127.0.0.1:0", "feed": map[string]int{"checkinSeconds": 1}})

	// 1. The console: its address, fingerprint and first password.
	con := e2e.StartConsole(t, consoleBin, cfgPath)
	base, fingerprint, password, consoleLog := con.Base, con.Fingerprint, con.Password, con.Log

	// 2. Sign in; create the enrollment key in the browser.
	p := bw.NewPage(t, browser.Desktop)
	p.Go(base + "/")
	p.WaitVisible("#signin-name")
	p.Fill("#signin-name", "admin")
	p.Fill("#signin-password", password)
	p.ClickAndWaitLoad(`form[action$="/signin"] button[type=submit]`)
	p.WaitVisible(".stats")
	p.Go(base + "/ui/settings/enrollment")
	p.Fill("#key-name", "ui e2e")
	p.ClickAndWaitLoad(`form[action$="/settings/enrollment"] button[type=submit]`)
	key, cmd := p.Text("#new-key"), p.Text("#enroll-cmd")
	if key == "" || !strings.Contains(cmd, "--fingerprint "+fingerprint) || !strings.Contains(cmd, "--console "+base) {
		t.Fatalf("enrollment page: key %q, command %q (want the console %s and fingerprint %s)", key, cmd, base, fingerprint)
	}
	p.Axe()
	keyFile := filepath.Join(dir, "enroll.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// 3. Enroll and run a real agent with the page's command.
	dnsPort := freeUDPPort(t)
	agentDir := filepath.Join(dir, "agent")
	agentCfg := filepath.Join(dir, "agent.json")
	writeJSON(t, agentCfg, map[string]any{
		"version": 1, "dataDir": agentDir, "mode": "block",
		"indicators": map[string]any{"source": "builtin:demo", "longPollSeconds": 60},
		"dns":        map[string]any{"capture": false, "listen": []string{fmt.Sprintf("127.0.0.1:%d", dnsPort)}, "upstreams": []string{"127.0.0.1:9"}},
		"sni":        map[string]any{"enabled": false},
		"telemetry":  map[string]any{"chunkRecords": 1, "chunkInterval": "1s"},
		"control":    map[string]any{"socket": filepath.Join(dir, "netward.sock")},
	})
	args := strings.Fields(strings.Replace(cmd, "KEYFILE", keyFile, 1))
	if len(args) < 2 || args[0] != "netward" || args[1] != "enroll" {
		t.Fatalf("enroll command %q", cmd)
	}
	eout, err := exec.Command(agentBin, append(args[1:], "--config", agentCfg, "--json")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, eout)
	}
	var enrolled struct {
		DeviceID string `json:"deviceId"`
	}
	if err := json.Unmarshal(eout, &enrolled); err != nil || enrolled.DeviceID == "" {
		t.Fatalf("netward enroll --json: %v: %s", err, eout)
	}
	dev := enrolled.DeviceID
	var agentLog e2e.SyncBuf
	ag := exec.Command(agentBin, "run", "--config", agentCfg)
	ag.Stdout, ag.Stderr = &agentLog, &agentLog
	e2e.Start(t, ag)

	// 4. The machine appears on the Machines page.
	reloadUntil(t, p, "the machine to check in on the Machines page", base+"/ui/machines",
		`[...document.querySelectorAll('#machines a')].some(a => a.href.includes('/ui/machines/`+dev+`')) && !document.querySelector('#machines').textContent.includes('unknown')`,
		30*time.Second, &agentLog, consoleLog)
	p.Axe()

	// 5. Tag Dropbox Monitored from the catalog; the agent warns; bypass
	// the warning on the agent (the bypass is root's, the caller's).
	p.Go(base + "/ui/catalog?q=dropbox")
	p.Click(`input[name="ids"][value="dropbox"]`)
	p.ClickAndWaitLoad(`#bulk-tag button[value="monitored"]`)
	if got := p.Text("main > .flashes"); !strings.Contains(got, "dropbox: Monitored") {
		t.Fatalf("flash after tagging Monitored: %q", got)
	}
	e2e.WaitFor(t, "the agent to warn and take the bypass", 15*time.Second, func() bool {
		exec.Command("dig", "+tries=1", "+time=1", "-p", strconv.Itoa(dnsPort), "@127.0.0.1", "www.dropbox.com", "A").Run()
		return exec.Command(agentBin, "bypass", "www.dropbox.com", "--config", agentCfg).Run() == nil
	}, &agentLog)

	// 6. The bypass and its user in the app's drawer on Discovered apps.
	reloadUntil(t, p, "the bypass in Dropbox's drawer", base+"/ui/apps?period=24h&app=dropbox",
		`document.querySelector('#drawer .stats') && /Bypasses\s*[1-9]/.test(document.querySelector('#drawer .stats').textContent) && /[1-9] distinct users bypassed/.test(document.querySelector('#drawer .stats').textContent)`,
		30*time.Second, &agentLog, consoleLog)
	if users := p.Text("#drawer-users"); !strings.Contains(users, "root") || !strings.Contains(users, "yes") {
		t.Errorf("drawer users %q: want root, who bypassed", users)
	}
	p.Axe()
	p.Screenshot("app-drawer")

	// 7. Tag it Unsanctioned from the Discovered apps table; dig through the
	// agent is blocked within 2 s of the confirmation.
	p.Go(base + "/ui/apps?period=24h")
	p.Click(`#apps-table input[name="ids"][value="dropbox"]`)
	p.Click(`#bulk-tag button[value="unsanctioned"]`)
	p.WaitVisible("dialog.confirm[open]")
	t0 := time.Now()
	p.ClickAndWaitLoad(`dialog.confirm button[value="ok"]`)
	e2e.WaitFor(t, "dig through the agent to be blocked", 10*time.Second, func() bool { return blocked(dnsPort, "www.dropbox.com") }, &agentLog)
	took := time.Since(t0)
	t.Logf("tag in the browser → enforcement: %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("the tag took %v to reach the agent, want ≤ 2 s", took)
	}

	// 8. The alert: an Unsanctioned app was accessed.
	reloadUntil(t, p, "the Unsanctioned-access alert", base+"/ui/alerts?period=24h",
		`document.querySelector('#alerts') && document.querySelector('#alerts').textContent.includes('Unsanctioned app accessed')`, 30*time.Second, consoleLog)
	if txt := p.Text("#alerts"); !strings.Contains(txt, dev) || !strings.Contains(txt, "dropbox") {
		t.Errorf("alert row %q lacks the machine or the app", txt)
	}
	p.Axe()

	// 9. CSV export of the apps: the Dropbox row, tagged, with the block
	// and the bypass.
	var csvText string
	p.Eval(`fetch('/ui/apps.csv?period=24h').then(r => r.text())`, &csvText)
	rows, err := csv.NewReader(strings.NewReader(csvText)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("apps CSV: %v\n%s", err, csvText)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	found := false
	for _, r := range rows[1:] {
		if r[col["App"]] != "dropbox" {
			continue
		}
		found = true
		n := func(c string) int { v, _ := strconv.Atoi(r[col[c]]); return v }
		if r[col["Tag"]] != "Unsanctioned" || n("Blocks") < 1 || n("Bypasses") < 1 || n("Machines") != 1 {
			t.Errorf("CSV row %v: want Unsanctioned, ≥ 1 block, ≥ 1 bypass, 1 machine", r)
		}
	}
	if !found {
		t.Errorf("no dropbox row in the CSV:\n%s", csvText)
	}

	// 10. Screenshots of the dashboard and the machine page.
	p.Go(base + "/ui/?period=24h")
	p.Axe()
	p.Screenshot("dashboard")
	p.Go(base + "/ui/machines/" + dev + "?period=24h")
	p.Axe()
	p.Screenshot("machine")

	// 11. A viewer: created on the Accounts page; no tag control, and a
	// forged tag POST with the viewer's own CSRF token is refused.
	p.Go(base + "/ui/settings/accounts")
	p.Fill("#acc-name", "vera")
	p.Run("choose viewer", chromedpSetValue("#acc-role", "viewer"))
	p.Fill("#acc-pw", "viewer password 123")
	p.ClickAndWaitLoad(`form[action$="/settings/accounts"] button[type=submit]`)
	p.ClickAndWaitLoad(`form.signout button`)
	p.Fill("#signin-name", "vera")
	p.Fill("#signin-password", "viewer password 123")
	p.ClickAndWaitLoad(`form[action$="/signin"] button[type=submit]`)
	p.Go(base + "/ui/apps?period=24h&app=dropbox")
	if n := p.Count(`#bulk-tag, input[name="ids"], #drawer .tag-form`); n != 0 {
		t.Errorf("the viewer sees %d tag controls", n)
	}
	var answer string
	p.Eval(`fetch('/ui/apps/tag', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
  body: new URLSearchParams({csrf_token: document.querySelector('form.signout input[name=csrf_token]').value, app: 'dropbox', tag: ''})}).then(r => r.text())`, &answer)
	if !strings.Contains(answer, "may not do this") {
		t.Errorf("the viewer's tag POST was not refused; the page said:\n%s", answer)
	}
	if !blocked(dnsPort, "www.dropbox.com") {
		t.Error("after the viewer's POST Dropbox is no longer blocked")
	}
}
