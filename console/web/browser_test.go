package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/internal/e2e/browser"
)

// One Chromium for the package; screenshots (NETWARD_SCREENSHOTS=1) go to
// docs/console-ui/ where docs/console-ui.md shows them.
var bw = browser.New(browser.Config{ScreenshotDir: filepath.Join("..", "..", "docs", "console-ui")})

func TestMain(m *testing.M) {
	code := m.Run()
	bw.Close()
	os.Exit(code)
}

const testToken = "csrf-test-token-0123456789"

// newTestServer serves the style guide as the console will: signed in, with
// a CSRF token and the security headers of Render.
func newTestServer(t *testing.T) (*Renderer, *httptest.Server) {
	t.Helper()
	r, err := New(Config{
		User:      func(*http.Request) (User, bool) { return User{Name: "amartin", Role: "admin"}, true },
		CSRFToken: func(*http.Request) string { return testToken },
		Badges:    func(*http.Request) map[string]string { return map[string]string{"alerts": "3"} },
		FlashKey:  []byte("test flash key"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	return r, srv
}

// The style guide at both sizes: no serious or critical axe violation, no
// console error or CSP violation (checked when each page closes), and at
// most 300 KB uncompressed with its script and stylesheet.
func TestStyleGuideBrowser(t *testing.T) {
	_, srv := newTestServer(t)
	for _, vp := range []browser.Viewport{browser.Desktop, browser.Phone} {
		t.Run(vp.Name, func(t *testing.T) {
			p := bw.NewPage(t, vp)
			for _, tc := range []struct{ name, query string }{
				{"styleguide", ""}, {"styleguide-drawer", "?drawer=dropbox"}, {"styleguide-90d", "?period=90d"},
			} {
				p.Go(srv.URL + "/ui/styleguide" + tc.query)
				p.WaitVisible("#palette")
				w := p.Weight()
				t.Logf("%s %s: %v", tc.name, vp.Name, w)
				if w.Decoded > 300*1024 {
					t.Errorf("%s: page weight %.1f KB, budget 300 KB", tc.name, float64(w.Decoded)/1024)
				}
				if w.ByType["Stylesheet"] == 0 || w.ByType["Script"] == 0 {
					t.Errorf("%s: stylesheet or script not loaded: %v", tc.name, w)
				}
				if len(w.Unfinished) > 0 {
					t.Errorf("%s: requests still loading: %v", tc.name, w.Unfinished)
				}
				p.Axe()
				if tc.name != "styleguide-90d" {
					p.Screenshot(tc.name + "-" + vp.Name)
				}
			}
			// Nothing may overflow the window sideways (on a phone the
			// layout viewport would grow and the page would pan).
			var overflow int
			p.Eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`, &overflow)
			if overflow > 0 {
				t.Errorf("page is %d px wider than the %d px window", overflow, vp.Width)
			}
		})
	}
}

func firstApps(p *browser.Page) []string {
	return p.Texts("#apps-table tbody tr:not([hidden]) td:nth-child(2) > a")
}

// With JavaScript the sort headers sort in place (no navigation) and keep
// aria-sort right.
func TestClientSort(t *testing.T) {
	_, srv := newTestServer(t)
	p := bw.NewPage(t, browser.Desktop)
	p.Go(srv.URL + "/ui/styleguide")
	p.Eval(`window.__stay = 1`, nil)
	p.Click(`#apps-table a.sort[data-sort-key="traffic"]`)
	if got := firstApps(p); got[0] != "DeepSeek" || got[len(got)-1] != "OneDrive" {
		t.Errorf("ascending by traffic: %v", got)
	}
	if s := p.Attr(`#apps-table th:has(a[data-sort-key="traffic"])`, "aria-sort"); s != "ascending" {
		t.Errorf("aria-sort = %q, want ascending", s)
	}
	p.Click(`#apps-table a.sort[data-sort-key="traffic"]`)
	if got := firstApps(p); got[0] != "OneDrive" {
		t.Errorf("descending by traffic starts with %q, want OneDrive", got[0])
	}
	p.Click(`#apps-table a.sort[data-sort-key="app"]`)
	if got := firstApps(p); got[0] != "Anthropic" || got[1] != "Atlassian" {
		t.Errorf("ascending by name: %v", got)
	}
	var stay int
	p.Eval(`window.__stay || 0`, &stay)
	if stay != 1 {
		t.Error("sorting reloaded the page; it should sort in place")
	}
	if loc := p.Location(); !strings.Contains(loc, "sort=app") {
		t.Errorf("URL %q does not record the sort", loc)
	}
}

// Without JavaScript the same header links sort on the server.
func TestServerSortWithoutJS(t *testing.T) {
	_, srv := newTestServer(t)
	p := bw.NewPage(t, browser.Phone)
	p.DisableJS(true)
	p.Go(srv.URL + "/ui/styleguide")
	p.ClickAndWaitLoad(`#apps-table a.sort[data-sort-key="users"]`)
	p.ClickAndWaitLoad(`#apps-table a.sort[data-sort-key="users"]`)
	if got := firstApps(p); got[0] != "OneDrive" || got[1] != "Slack" {
		t.Errorf("server sort by users, descending: %v", got)
	}
	if s := p.Attr(`#apps-table th:has(a[data-sort-key="users"])`, "aria-sort"); s != "descending" {
		t.Errorf("aria-sort = %q", s)
	}
}

func TestClientFilter(t *testing.T) {
	_, srv := newTestServer(t)
	p := bw.NewPage(t, browser.Desktop)
	p.Go(srv.URL + "/ui/styleguide")
	p.Fill("#apps-table-q", "cloud")
	got := firstApps(p)
	if strings.Join(got, ",") != "Dropbox,OneDrive,Mega" {
		t.Errorf("filter 'cloud' shows %v, want the three cloud-storage apps", got)
	}
	if c := p.Text("#apps-table-count"); c != "3 of 14 rows" {
		t.Errorf("count = %q", c)
	}
	p.Fill("#apps-table-q", "zzz")
	if p.Attr("#apps-table-none", "hidden") != "" || len(firstApps(p)) != 0 {
		t.Errorf("no-match message not shown")
	}
}

// The drawer is a link: without JavaScript it loads the page with the
// drawer open, and its close link goes back.
func TestDrawerWithoutJS(t *testing.T) {
	_, srv := newTestServer(t)
	p := bw.NewPage(t, browser.Phone)
	p.DisableJS(true)
	p.Go(srv.URL + "/ui/styleguide")
	if p.Count("#drawer") != 0 {
		t.Fatal("drawer open before the link was followed")
	}
	p.ClickAndWaitLoad(`#apps-table a[data-drawer][href*="drawer=openai"]`)
	p.WaitVisible("#drawer")
	if got := p.Text("#drawer-title"); got != "OpenAI" {
		t.Errorf("drawer title %q, want OpenAI", got)
	}
	if got := p.Text("#drawer .stats"); !strings.Contains(got, "3,120") || !strings.Contains(got, "118 distinct users") {
		t.Errorf("drawer stats %q lack the warn and bypass counts", got)
	}
	p.Axe()
	p.ClickAndWaitLoad(`#drawer a[data-drawer-close]`)
	if p.Count("#drawer") != 0 {
		t.Error("close link did not close the drawer")
	}
}

// With JavaScript the drawer loads in place, gets focus, updates the URL,
// and Escape closes it.
func TestDrawerWithJS(t *testing.T) {
	_, srv := newTestServer(t)
	p := bw.NewPage(t, browser.Desktop)
	p.Go(srv.URL + "/ui/styleguide")
	p.Eval(`window.__stay = 1`, nil)
	p.Click(`#apps-table a[data-drawer][href*="drawer=dropbox"]`)
	p.WaitVisible("#drawer")
	var focused string
	p.Eval(`document.activeElement.id`, &focused)
	if focused != "drawer" {
		t.Errorf("focus on %q, want the drawer", focused)
	}
	if loc := p.Location(); !strings.Contains(loc, "drawer=dropbox") {
		t.Errorf("URL %q does not name the drawer", loc)
	}
	p.Axe()
	p.Run("press Escape", chromedpKey("Escape"))
	p.WaitGone("#drawer")
	var stay int
	p.Eval(`window.__stay || 0`, &stay)
	if stay != 1 {
		t.Error("the drawer reloaded the page")
	}
	if loc := p.Location(); strings.Contains(loc, "drawer=") {
		t.Errorf("URL %q still names the drawer after closing", loc)
	}
}

// A form with data-confirm asks first; Cancel keeps the page, Confirm posts
// (with the CSRF token) and the flash message of the redirect shows.
func TestConfirmAndFlash(t *testing.T) {
	_, srv := newTestServer(t)
	p := bw.NewPage(t, browser.Desktop)
	p.Go(srv.URL + "/ui/styleguide")
	p.Click(`form[data-confirm*="Revoke FIN-LT-0142"] button`)
	p.WaitVisible("dialog.confirm[open]")
	if got := p.Text("#confirm-text"); !strings.Contains(got, "Revoke FIN-LT-0142?") {
		t.Errorf("dialog says %q", got)
	}
	p.Axe()
	p.Click(`dialog.confirm button[value="cancel"]`)
	p.WaitGone("dialog.confirm[open]")
	if p.Count(".flashes .flash") != 4 { // only the style guide's samples
		t.Fatal("Cancel submitted the form")
	}
	p.Click(`form[data-confirm*="Revoke FIN-LT-0142"] button`)
	p.WaitVisible("dialog.confirm[open]")
	p.ClickAndWaitLoad(`dialog.confirm button[value="ok"]`)
	p.WaitVisible("main > .flashes .flash-success")
	if got := p.Text("main > .flashes"); !strings.Contains(got, "FIN-LT-0142 would now be untagged") {
		t.Errorf("flash after confirm: %q", got)
	}
}

func TestCopyButton(t *testing.T) {
	_, srv := newTestServer(t)
	p := bw.NewPage(t, browser.Desktop)
	p.Go(srv.URL + "/ui/styleguide")
	if p.Attr(`[data-copy="enroll-cmd"]`, "hidden") != "" {
		t.Fatal("copy button still hidden with JavaScript")
	}
	p.Click(`[data-copy="enroll-cmd"]`)
	p.WaitFor(`document.getElementById('live').textContent !== ''`)
	if got := p.Text("#live"); got != "Copied to the clipboard" {
		t.Errorf("live region says %q after copy", got)
	}
}
