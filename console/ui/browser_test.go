package ui

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e/browser"
)

// One Chromium for the package; the test console's certificate is
// self-signed.
var bw = browser.New(browser.Config{IgnoreCertErrors: true, Timeout: 6 * time.Minute, ActionTimeout: 45 * time.Second, ScreenshotDir: filepath.Join("..", "..", "docs", "console-ui")})

func TestMain(m *testing.M) {
	code := m.Run()
	bw.Close()
	os.Exit(code)
}

// browserSignin signs in through the form.
func browserSignin(p *browser.Page, base, name, pw string) {
	p.Go(base + Base + "/signin")
	p.Fill("#signin-name", name)
	p.Fill("#signin-password", pw)
	p.ClickAndWaitLoad(`form[action$="/signin"] button[type=submit]`)
}

// Every page at 1280×800 and on a 390 px phone: no serious or critical axe
// violation, no console error, failed request or CSP violation (checked
// when the page closes), at most 300 KB with its script and stylesheet,
// nothing wider than the window.
func TestEveryPageBrowser(t *testing.T) {
	f := newFixture(t)
	f.fleet(t, time.Now().Add(-time.Hour))
	ctx := context.Background()
	if err := f.st.SetTag(ctx, "dropbox", "Unsanctioned", "test"); err != nil {
		t.Fatal(err)
	}
	pages := []string{"/", "/?period=24h", "/?period=90d", "/apps?period=24h", "/apps?period=24h&app=dropbox", "/machines", "/machines/dev-a?period=24h",
		"/machines/dev-a/apps?period=24h", "/machines/dev-a/users", "/machines/dev-a/ips", "/machines/dev-a/events?period=24h", "/hunt?period=24h&domains=dropbox.com", "/apps/domains?period=24h",
		"/catalog", "/catalog?q=drop", "/catalog/custom", "/catalog/indicators", "/catalog/policies", "/alerts?period=24h",
		"/settings", "/settings/enrollment", "/settings/devices", "/settings/accounts", "/settings/tokens", "/settings/alerts", "/account"}
	for _, vp := range []browser.Viewport{browser.Desktop, browser.Phone} {
		t.Run(vp.Name, func(t *testing.T) {
			p := bw.NewPage(t, vp)
			browserSignin(p, f.srv.URL, "root", adminPW)
			for _, path := range pages {
				p.Go(f.srv.URL + Base + path)
				w := p.Weight()
				if w.Decoded > 300*1024 {
					t.Errorf("%s: page weight %.1f KB, budget 300 KB", path, float64(w.Decoded)/1024)
				}
				if len(w.Unfinished) > 0 {
					t.Errorf("%s: requests still loading: %v", path, w.Unfinished)
				}
				p.Axe()
				var overflow int
				p.Eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`, &overflow)
				if overflow > 0 {
					t.Errorf("%s: page is %d px wider than the %d px window", path, overflow, vp.Width)
				}
			}
			// The sign-in page, signed out.
			p.ClickAndWaitLoad(`form.signout button`)
			p.WaitVisible("#signin-name")
			p.Axe()
		})
	}
}

// With JavaScript: the drawer opens in place from the Discovered apps page,
// the admin tags from it (confirming Unsanctioned), and a viewer sees
// neither the tag buttons nor the row checkboxes.
func TestTagFromDrawerBrowser(t *testing.T) {
	f := newFixture(t)
	f.fleet(t, time.Now().Add(-time.Hour))
	p := bw.NewPage(t, browser.Desktop)
	browserSignin(p, f.srv.URL, "root", adminPW)
	p.Go(f.srv.URL + Base + "/apps?period=24h")
	p.Click(`#apps-table a[data-drawer][href*="app=dropbox"]`)
	p.WaitVisible("#drawer")
	if got := p.Text("#drawer .stats"); !strings.Contains(got, "1 distinct users bypassed") {
		t.Errorf("drawer stats %q lack the distinct bypass users", got)
	}
	p.Click(`#drawer button[value="unsanctioned"]`)
	p.WaitVisible("dialog.confirm[open]")
	p.ClickAndWaitLoad(`dialog.confirm button[value="ok"]`)
	p.WaitVisible("main > .flashes .flash-success")
	if got := p.Text("main > .flashes"); !strings.Contains(got, "dropbox: Unsanctioned") {
		t.Errorf("flash after tagging: %q", got)
	}
	if tags, _ := f.st.Tags(context.Background()); tags["dropbox"].Tag != "Unsanctioned" {
		t.Errorf("tag not stored: %+v", tags["dropbox"])
	}

	v := bw.NewPage(t, browser.Phone)
	browserSignin(v, f.srv.URL, "val", viewerPW)
	v.Go(f.srv.URL + Base + "/apps?period=24h&app=dropbox")
	if n := v.Count(`#bulk-tag, input[name="ids"], #drawer .tag-form`); n != 0 {
		t.Errorf("viewer sees %d tag controls", n)
	}
	v.Axe()
}
