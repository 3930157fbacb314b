package browser

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/internal/e2e"
)

var bw = New(Config{})

func TestMain(m *testing.M) {
	code := m.Run()
	bw.Close()
	os.Exit(code)
}

const csp = "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'"

// site serves small pages that each exercise one check of the harness.
func site(t *testing.T) *httptest.Server {
	big := strings.Repeat("/* padding */\n", 50_000/14)
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test</title><link rel="icon" href="data:,"></head><body><main><h1>Test</h1>%s</main></body></html>`, body)
		}
	}
	mux.HandleFunc("/clean", page(`<p id="msg">static</p><form><label for="q">Query</label><input id="q" name="q"><button id="go" type="button">Go</button></form><script src="/app.js"></script>`))
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `document.getElementById('msg').textContent = 'scripted';
document.getElementById('go').addEventListener('click', function () {
  document.getElementById('msg').textContent = 'clicked ' + document.getElementById('q').value; });`)
	})
	mux.HandleFunc("/csp", page(`<p>inline</p><script>document.title = 'ran';</script><p style="color:red">styled</p>`))
	mux.HandleFunc("/console", page(`<script src="/err.js"></script>`))
	mux.HandleFunc("/err.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `console.error('something broke'); null.boom;`)
	})
	mux.HandleFunc("/a11y", page(`<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="10" height="10"><button></button><input type="text">`))
	mux.HandleFunc("/heavy", page(`<p>heavy</p><script src="/big.js"></script>`))
	mux.HandleFunc("/big.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, big)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestCleanPageHelpers(t *testing.T) {
	srv := site(t)
	p := bw.NewPage(t, Desktop)
	p.Go(srv.URL + "/clean")
	if got := p.Text("#msg"); got != "scripted" {
		t.Errorf("script did not run: #msg = %q", got)
	}
	p.Fill("#q", "dropbox")
	p.Click("#go")
	if got := p.Text("#msg"); got != "clicked dropbox" {
		t.Errorf("after fill and click: #msg = %q, want %q", got, "clicked dropbox")
	}
	if n := p.Count("input"); n != 1 {
		t.Errorf("Count(input) = %d, want 1", n)
	}
	if v := p.Attr("#q", "name"); v != "q" {
		t.Errorf("Attr = %q, want q", v)
	}
	p.Axe()
	w := p.Weight()
	if w.Requests != 2 || w.Decoded < 300 || w.ByType["Script"] == 0 {
		t.Errorf("weight = %v; want the document and app.js", w)
	}
}

func TestDetectsCSPViolations(t *testing.T) {
	srv := site(t)
	p := bw.NewPage(t, Desktop)
	p.Go(srv.URL + "/csp")
	var title string
	p.Eval(`document.title`, &title)
	if title == "ran" {
		t.Fatal("the inline script ran despite the CSP")
	}
	probs := strings.Join(p.TakeProblems(), "\n")
	for _, want := range []string{"script-src", "style-src"} {
		if !strings.Contains(probs, "CSP violation") || !strings.Contains(probs, want) {
			t.Errorf("CSP violation of %s not reported; problems:\n%s", want, probs)
		}
	}
}

func TestDetectsConsoleErrors(t *testing.T) {
	srv := site(t)
	p := bw.NewPage(t, Desktop)
	p.Go(srv.URL + "/console")
	p.WaitFor(`document.readyState === 'complete'`)
	probs := strings.Join(p.TakeProblems(), "\n")
	if !strings.Contains(probs, "something broke") {
		t.Errorf("console.error not reported; problems:\n%s", probs)
	}
	if !strings.Contains(probs, "uncaught exception") {
		t.Errorf("uncaught TypeError not reported; problems:\n%s", probs)
	}
}

func TestAxeFindsViolations(t *testing.T) {
	srv := site(t)
	p := bw.NewPage(t, Phone)
	p.Go(srv.URL + "/a11y")
	got := map[string]string{}
	for _, v := range p.AxeViolations() {
		got[v.ID] = v.Impact
	}
	for _, id := range []string{"image-alt", "button-name", "label"} {
		if imp := got[id]; imp != "critical" && imp != "serious" {
			t.Errorf("axe did not report %s as serious/critical (got %v)", id, got)
		}
	}
}

func TestWeightCountsSubresources(t *testing.T) {
	srv := site(t)
	p := bw.NewPage(t, Desktop)
	p.Go(srv.URL + "/heavy")
	w := p.Weight()
	if w.ByType["Script"] < 49_000 || w.ByType["Script"] > 51_000 {
		t.Errorf("script weight %d, want ~50,000 bytes: %v", w.ByType["Script"], w)
	}
	if w.Decoded < w.ByType["Script"]+200 {
		t.Errorf("document not counted: %v", w)
	}
	// A second visit is measured afresh and not served from a cache.
	p.Go(srv.URL + "/heavy")
	if w2 := p.Weight(); w2.ByType["Script"] != w.ByType["Script"] || w2.Requests != w.Requests {
		t.Errorf("second visit weight %v, first %v", w2, w)
	}
}

func TestDisableJS(t *testing.T) {
	srv := site(t)
	p := bw.NewPage(t, Phone)
	p.DisableJS(true)
	p.Go(srv.URL + "/clean")
	if got := p.Text("#msg"); got != "static" {
		t.Errorf("with JavaScript disabled #msg = %q, want the server's text", got)
	}
	p.DisableJS(false)
	p.Go(srv.URL + "/clean")
	if got := p.Text("#msg"); got != "scripted" {
		t.Errorf("with JavaScript enabled again #msg = %q", got)
	}
}

func TestScreenshotOnlyWhenAsked(t *testing.T) {
	srv := site(t)
	dir := t.TempDir()
	b := &Browser{cfg: bw.cfg}
	b.cfg.ScreenshotDir = dir
	p := bw.NewPage(t, Desktop)
	p.b = b
	p.Go(srv.URL + "/clean")
	t.Setenv("NETWARD_SCREENSHOTS", "")
	if path := p.Screenshot("off"); path != "" {
		t.Fatalf("screenshot written without NETWARD_SCREENSHOTS=1: %s", path)
	}
	t.Setenv("NETWARD_SCREENSHOTS", "1")
	path := p.Screenshot("on")
	data, err := os.ReadFile(filepath.Join(dir, "on.png"))
	if err != nil || path == "" || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("screenshot %q: %v (%d bytes)", path, err, len(data))
	}
}

// Without Chromium a test skips with a message that says how to get it
// (under NETWARD_E2E=require the same call fails the test instead).
func TestMissingChromiumSkips(t *testing.T) {
	t.Setenv("NETWARD_E2E", "")
	t.Setenv(e2e.SkipLogEnv, "") // a skip on purpose: not one for make test's summary
	b := New(Config{ExecPath: filepath.Join(t.TempDir(), "no-chromium")})
	defer b.Close()
	var sub *testing.T
	t.Run("page", func(t *testing.T) {
		sub = t
		b.NewPage(t, Desktop)
		t.Error("NewPage returned without Chromium")
	})
	if !sub.Skipped() {
		t.Fatal("the test was not skipped")
	}
	if !strings.Contains(b.skip, "apt-get install -y chromium") {
		t.Errorf("skip message %q does not say how to install Chromium", b.skip)
	}
}
