package warnpage

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/netward/netward/internal/e2e"
)

// browser starts headless Chromium with the given host mappings and nothing
// else resolvable, so the test browser never reaches the outside world.
func browser(t *testing.T, hosts map[string]string) context.Context {
	t.Helper()
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		msg := "headless Chromium missing (apt-get install -y chromium)"
		if os.Getenv("NETWARD_E2E") == "require" {
			t.Fatal(msg)
		}
		e2e.Skip(t, msg)
	}
	var rules []string
	for h, addr := range hosts {
		rules = append(rules, "MAP "+h+" "+addr)
	}
	rules = append(rules, "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1")
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after the browser exits.
	profile, err := os.MkdirTemp("", "nwwarn-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("host-resolver-rules", strings.Join(rules, ",")),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(900, 760),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelT()
		cancelC()
		cancelA()
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove the browser profile %s", profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

func hostPort(u string) string { p, _ := url.Parse(u); return p.Host }

// A real browser opens the warn page, clicks Continue and lands on the real
// site once the page's wait is over.
func TestBrowserContinue(t *testing.T) {
	real := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<!doctype html><title>Real site</title><h1 id=real>Real site %s</h1>", r.URL.Path)
	}))
	defer real.Close()
	p := newPolicy(t)
	s, err := New(Config{Decide: p.decide, Continue: p.cont, Key: testKey, Wait: time.Second,
		Links:  func() Links { return Links{Warn: "https://intranet.example/apps"} },
		Target: func(site, uri string) string { return real.URL + uri }})
	if err != nil {
		t.Fatal(err)
	}
	sink := httptest.NewServer(s.Handler())
	defer sink.Close()
	// The attacker's page: it auto-submits a Continue form to the warned site.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><form id=f method=post action="http://warned.test/.netward/continue">
<input name=token value="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"><input name=path value="/"></form>
<script>document.getElementById("f").submit()</script>`)
	}))
	defer evil.Close()

	ctx := browser(t, map[string]string{"warned.test": hostPort(sink.URL), "evil.test": hostPort(evil.URL)})

	// Load the warn page once (sets the Continue cookie), then let another
	// origin try to continue for the user: refused, nothing created.
	var body string
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://warned.test/page?q=1"),
		chromedp.WaitVisible("#continue", chromedp.ByID),
		chromedp.Navigate("http://evil.test/"),
		chromedp.WaitVisible("main", chromedp.ByQuery),
		chromedp.Text("main", &body, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "Refused") || p.continues() != 0 {
		t.Fatalf("cross-origin Continue: page %q, bypasses %d; want refused, none", body, p.continues())
	}

	var shot []byte
	var final string
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://warned.test/page?q=1"),
		chromedp.WaitVisible("#continue", chromedp.ByID),
		chromedp.CaptureScreenshot(&shot),
		chromedp.Click("#continue", chromedp.ByID),
		chromedp.WaitVisible("#real", chromedp.ByID),
		chromedp.Text("#real", &body, chromedp.ByID),
		chromedp.Location(&final),
	); err != nil {
		t.Fatal(err)
	}
	if p.continues() != 1 {
		t.Errorf("bypasses created = %d, want 1", p.continues())
	}
	if body != "Real site /page" || final != real.URL+"/page?q=1" {
		t.Errorf("landed on %q with %q, want %s/page?q=1", final, body, real.URL)
	}
	if !bytes.HasPrefix(shot, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG")
	}
	// NETWARD_UPDATE_SCREENSHOT=1 refreshes the README's picture.
	if os.Getenv("NETWARD_UPDATE_SCREENSHOT") != "" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "warn-page.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
