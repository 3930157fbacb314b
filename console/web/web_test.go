package web

import (
	"bytes"
	"crypto/tls"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testRenderer(t *testing.T, cfg Config) *Renderer {
	t.Helper()
	if cfg.User == nil {
		cfg.User = func(*http.Request) (User, bool) { return User{Name: "amartin", Role: "admin"}, true }
	}
	if cfg.CSRFToken == nil {
		cfg.CSRFToken = func(*http.Request) string { return testToken }
	}
	if cfg.FlashKey == nil {
		cfg.FlashKey = []byte("k")
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func get(t *testing.T, h http.Handler, target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var assetHash = regexp.MustCompile(`\.[0-9a-f]{12}\.(css|js|svg)`)

// The style guide renders every partial; its HTML is pinned by a golden
// file (asset hashes masked, so a stylesheet edit does not churn it).
func TestStyleGuideGolden(t *testing.T) {
	r := testRenderer(t, Config{})
	rec := get(t, r.Handler(), "/ui/styleguide?drawer=dropbox&sort=traffic&dir=desc")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := assetHash.ReplaceAll(rec.Body.Bytes(), []byte(".HASH.$1"))
	path := filepath.Join("testdata", "styleguide-drawer.golden.html")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("style guide differs from %s; review and run go test -update", path)
	}
}

// Every variant of the style guide passes the page lint: CSRF on every
// POST form, nothing the CSP would block, labelled controls, one h1.
func TestStyleGuidePassesCheckPage(t *testing.T) {
	r := testRenderer(t, Config{})
	for _, q := range []string{"", "?period=24h", "?period=7d", "?period=90d", "?drawer=openai", "?q=zzz", "?page=3", "?sort=users&dir=desc"} {
		rec := get(t, r.Handler(), "/ui/styleguide"+q)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d", q, rec.Code)
		}
		if err := CheckPage(rec.Body.Bytes(), "csrf_token"); err != nil {
			t.Errorf("styleguide%s: %v", q, err)
		}
		if !strings.Contains(rec.Body.String(), `value="`+testToken+`"`) {
			t.Errorf("styleguide%s: CSRF token not rendered", q)
		}
	}
}

func TestCheckPageCatches(t *testing.T) {
	ok := `<main><h1>x</h1>%s</main>`
	for _, tc := range []struct{ name, body, want string }{
		{"post without token", `<form method="post"><button>Go</button></form>`, "has no csrf_token"},
		{"empty token", `<form method="POST"><input type="hidden" name="csrf_token" value=""></form>`, "has no csrf_token"},
		{"inline script", `<script>alert(1)</script>`, "inline <script>"},
		{"style element", `<style>p{}</style>`, "<style> element"},
		{"style attribute", `<p style="color:red">x</p>`, "inline styles"},
		{"handler", `<button onclick="x()">x</button>`, "inline handlers"},
		{"javascript url", `<a href=" JavaScript:alert(1)">x</a>`, "javascript: URLs"},
		{"unlabelled input", `<input name="q">`, "has no label"},
		{"wrong label", `<label for="a">A</label><input id="b">`, "has no label"},
	} {
		body := strings.Replace(ok, "%s", tc.body, 1)
		err := CheckPage([]byte(body), "csrf_token")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckPage = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	good := `<main><h1>x</h1><form method="post"><input type="hidden" name="csrf_token" value="t"><label for="a">A</label><input id="a">
<label>B <input name="b"></label><input aria-label="C"><input type="hidden" name="h"><button>Go</button></form><script src="/x.js"></script></main>`
	if err := CheckPage([]byte(good), "csrf_token"); err != nil {
		t.Errorf("CheckPage(good) = %v", err)
	}
	if err := CheckPage([]byte(`<main><h1>a</h1><h1>b</h1></main><main></main>`), "csrf_token"); err == nil ||
		!strings.Contains(err.Error(), "2 <main>") || !strings.Contains(err.Error(), "2 <h1>") {
		t.Errorf("duplicate main/h1 not caught: %v", err)
	}
}

func TestSecurityHeaders(t *testing.T) {
	r := testRenderer(t, Config{})
	rec := get(t, r.Handler(), "/ui/styleguide")
	h := rec.Header()
	for k, want := range map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "same-origin",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, d) {
			t.Errorf("CSP lacks %s", d)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP allows something unsafe: %s", ContentSecurityPolicy)
	}
	if h.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS sent over plain HTTP")
	}
	req := httptest.NewRequest(http.MethodGet, "/ui/styleguide", nil)
	req.TLS = &tls.ConnectionState{}
	rec = httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, req)
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
	// Pages carry no inline code, so the CSP costs nothing.
	if err := CheckPage(rec.Body.Bytes(), "csrf_token"); err != nil {
		t.Error(err)
	}
}

func TestAssets(t *testing.T) {
	r := testRenderer(t, Config{})
	h := r.Handler()
	for _, name := range []string{"console.css", "console.js", "favicon.svg"} {
		u := r.AssetPath(name)
		if !assetHash.MatchString(u) || !strings.HasPrefix(u, "/ui/assets/") {
			t.Fatalf("AssetPath(%s) = %q, want a hashed name under /ui/assets/", name, u)
		}
		rec := get(t, h, u)
		want, _ := embedded.ReadFile("assets/" + name)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), want) {
			t.Fatalf("%s: status %d, %d bytes (want %d)", u, rec.Code, rec.Body.Len(), len(want))
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", u, cc)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Content-Type") == "" {
			t.Errorf("%s: headers %v", u, rec.Header())
		}
		// gzip for clients that take it, and a 304 for a known ETag.
		req := httptest.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if name != "favicon.svg" && rec.Header().Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: not gzipped for a gzip client", u)
		}
		req = httptest.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified {
			t.Errorf("%s: If-None-Match gave %d", u, rec.Code)
		}
	}
	for _, bad := range []string{"/ui/assets/console.css", "/ui/assets/console.000000000000.css", "/ui/assets/../web.go", "/ui/assets/"} {
		// ServeMux redirects unclean paths; nothing outside the set is served.
		if rec := get(t, h, bad); rec.Code != http.StatusNotFound && rec.Code != http.StatusTemporaryRedirect {
			t.Errorf("%s: status %d, want 404", bad, rec.Code)
		}
	}
	if r.AssetPath("nope.css") != "" {
		t.Error("AssetPath of a missing asset is not empty")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, r.AssetPath("console.css"), nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST to an asset: %d", rec.Code)
	}
}

func post(t *testing.T, h http.Handler, target string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// The style guide's form handler shows the post/redirect/get pattern: CSRF
// checked, a signed flash shown once on the next page.
func TestFlashAndCSRF(t *testing.T) {
	r := testRenderer(t, Config{})
	h := r.Handler()
	if rec := post(t, h, "/ui/styleguide", url.Values{"app": {"dropbox"}, "tag": {"unsanctioned"}}); rec.Code != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %d, want 403", rec.Code)
	}
	if rec := post(t, h, "/ui/styleguide", url.Values{"csrf_token": {testToken}, "app": {"dropbox"}, "tag": {"evil"}}); rec.Code != http.StatusBadRequest {
		t.Errorf("unknown tag: %d, want 400", rec.Code)
	}
	rec := post(t, h, "/ui/styleguide", url.Values{"csrf_token": {testToken}, "app": {"dropbox"}, "tag": {"unsanctioned"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/styleguide" {
		t.Fatalf("POST: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].Path != "/ui/" {
		t.Fatalf("flash cookie %+v", cookies)
	}
	page := get(t, h, "/ui/styleguide", cookies[0])
	const msg = "Style guide: Dropbox would now be tagged Unsanctioned. Nothing was changed."
	if !strings.Contains(page.Body.String(), `<div class="flash flash-success" role="status">`+msg) {
		t.Errorf("flash not shown on the next page")
	}
	if c := page.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("flash cookie not cleared: %+v", c)
	}
	// A cookie signed with another key, or edited, shows nothing.
	other := testRenderer(t, Config{FlashKey: []byte("other")})
	rec = post(t, other.Handler(), "/ui/styleguide", url.Values{"csrf_token": {testToken}, "app": {"x"}, "tag": {""}})
	forged := rec.Result().Cookies()[0]
	tampered := *cookies[0]
	tampered.Value = strings.Replace(tampered.Value, "A", "B", 1)
	for _, c := range []*http.Cookie{forged, &tampered} {
		if body := get(t, h, "/ui/styleguide", c).Body.String(); strings.Contains(body, "would now be") {
			t.Errorf("unsigned flash %q was shown", c.Value)
		}
	}
}

func TestCSV(t *testing.T) {
	r := testRenderer(t, Config{})
	rec := get(t, r.Handler(), "/ui/styleguide/apps.csv")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/csv; charset=utf-8" ||
		rec.Header().Get("Content-Disposition") != `attachment; filename="styleguide-apps.csv"` {
		t.Fatalf("CSV response %d %v", rec.Code, rec.Header())
	}
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if lines[0] != "App,Category,Tag,Traffic,Users,Machines,Last seen" || len(lines) != 15 {
		t.Fatalf("CSV header %q, %d lines", lines[0], len(lines))
	}
	if lines[1] != "Dropbox (dropbox.com),Cloud storage,Monitored,412000000000,318,402,2 min ago" {
		t.Errorf("first row %q: want raw numbers and tag names", lines[1])
	}
	// Formula injection is neutralised; numbers stay numbers.
	rec = httptest.NewRecorder()
	r.WriteCSV(rec, httptest.NewRequest("GET", "/", nil), `bad"name/..`, Table{
		Columns: []Column{{Label: "Name"}, {Label: "Bytes", Numeric: true}},
		Rows:    []Row{{Cells: []Cell{TextCell("=HYPERLINK(\"http://x\")"), {Text: "-5 B", Sort: "-5"}}}, {Cells: []Cell{TextCell("@SUM(1)")}}},
	})
	want := "Name,Bytes\n\"'=HYPERLINK(\"\"http://x\"\")\",-5\n'@SUM(1),\n"
	if rec.Body.String() != want {
		t.Errorf("CSV = %q, want %q", rec.Body.String(), want)
	}
	if cd := rec.Header().Get("Content-Disposition"); cd != `attachment; filename="bad-name-...csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
}

func TestPager(t *testing.T) {
	u, _ := url.Parse("/ui/machines?period=7d&page=9")
	for _, tc := range []struct {
		page, per, total int
		want             string
		from, to         int
	}{
		{1, 50, 0, "[1]", 0, 0},
		{1, 50, 120, "[1] 2 3", 1, 50},
		{5, 10, 1000, "1 … 3 4 [5] 6 7 … 100", 41, 50},
		{999, 10, 95, "1 … 8 9 [10]", 91, 95},
		{-3, 0, 10, "[1]", 1, 10},
	} {
		p := NewPager(u, tc.page, tc.per, tc.total)
		var parts []string
		for _, l := range p.Links {
			switch {
			case l.Gap:
				parts = append(parts, "…")
			case l.Current:
				parts = append(parts, "["+itoa(l.N)+"]")
			default:
				parts = append(parts, itoa(l.N))
			}
		}
		if got := strings.Join(parts, " "); got != tc.want || p.From != tc.from || p.To != tc.to {
			t.Errorf("NewPager(%d, %d, %d) = %q rows %d–%d, want %q rows %d–%d", tc.page, tc.per, tc.total, got, p.From, p.To, tc.want, tc.from, tc.to)
		}
	}
	p := NewPager(u, 2, 10, 100)
	if p.Prev != "?page=1&period=7d" || p.Next != "?page=3&period=7d" {
		t.Errorf("Prev %q Next %q: want the other parameters kept", p.Prev, p.Next)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestPeriods(t *testing.T) {
	now := time.Date(2026, 6, 30, 14, 20, 0, 0, time.UTC)
	for _, tc := range []struct {
		in       string
		from, to string
	}{
		{"24h", "2026-06-29T15:00:00Z", "2026-06-30T15:00:00Z"},
		{"7d", "2026-06-23T15:00:00Z", "2026-06-30T15:00:00Z"},
		{"30d", "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"},
		{"90d", "2026-04-02T00:00:00Z", "2026-07-01T00:00:00Z"},
	} {
		p, ok := ParsePeriod(tc.in)
		if !ok {
			t.Fatalf("ParsePeriod(%q) failed", tc.in)
		}
		from, to := p.Range(now)
		if from.Format(time.RFC3339) != tc.from || to.Format(time.RFC3339) != tc.to {
			t.Errorf("%s.Range = %v – %v, want %s – %s", tc.in, from, to, tc.from, tc.to)
		}
	}
	for _, bad := range []string{"", "1y", "24H", "30"} {
		if _, ok := ParsePeriod(bad); ok {
			t.Errorf("ParsePeriod(%q) accepted", bad)
		}
	}
	req := httptest.NewRequest("GET", "/?period=bogus", nil)
	if p := PeriodOf(req, Period7d); p != Period7d {
		t.Errorf("PeriodOf(bogus) = %q, want the default", p)
	}
}

// Page authors' templates: the layout wraps them, the nav marks their
// section, the period is kept in links, and mistakes fail at New or give a
// clean 500.
func TestCustomPages(t *testing.T) {
	pages := fstest.MapFS{
		"apps.html":            {Data: []byte(`{{define "title"}}Apps{{end}}{{define "main"}}{{template "page-header" ($.Header "Discovered apps" "")}}<p id="n">{{.Data.N}}</p>{{if $.CanEdit}}<p id="edit">edit</p>{{end}}{{end}}`)},
		"machines/detail.html": {Data: []byte(`{{define "main"}}<h1>{{.Data.Missing.Field}}</h1>{{end}}`)},
	}
	var logs bytes.Buffer
	role := "admin"
	r := testRenderer(t, Config{Pages: pages, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		User: func(*http.Request) (User, bool) { return User{Name: "v", Role: role}, true }})
	if got := strings.Join(r.Pages(), ","); got != "apps,error,machines/detail,styleguide" {
		t.Errorf("Pages() = %s", got)
	}
	render := func(page, target string, data any) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r.Render(rec, httptest.NewRequest("GET", target, nil), page, data)
		return rec
	}
	rec := render("apps", "/ui/apps?period=7d", struct{ N int }{42})
	body := rec.Body.String()
	for _, want := range []string{
		"<title>Apps · netward console</title>", `<p id="n">42</p>`, `<p id="edit">edit</p>`,
		`<a href="/ui/apps?period=7d" aria-current="page">Discovered apps</a>`,
		`<a href="/ui/machines?period=7d">Machines</a>`, `aria-current="true"><span class="visually-hidden">Last 7 days</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("apps page lacks %s", want)
		}
	}
	if err := CheckPage(rec.Body.Bytes(), "csrf_token"); err != nil {
		t.Error(err)
	}
	role = "viewer"
	if strings.Contains(render("apps", "/ui/apps", struct{ N int }{1}).Body.String(), `id="edit"`) {
		t.Error("a viewer sees edit controls")
	}
	rec = render("machines/detail", "/ui/machines/x", struct{}{})
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "could not be shown") || !strings.Contains(logs.String(), "machines/detail") {
		t.Errorf("template error: status %d, log %q", rec.Code, logs.String())
	}
	if rec := render("nope", "/ui/nope", nil); rec.Code != 500 || !strings.Contains(logs.String(), "no such page") {
		t.Errorf("unknown page: %d", rec.Code)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"no main":     {"a.html": {Data: []byte(`{{define "title"}}x{{end}}`)}},
		"parse error": {"a.html": {Data: []byte(`{{define "main"}}{{.X{{end}}`)}},
		"duplicate":   {"styleguide.html": {Data: []byte(`{{define "main"}}x{{end}}`)}},
	} {
		if _, err := New(Config{Pages: fsys}); err == nil {
			t.Errorf("%s: New accepted the pages", name)
		}
	}
}

func TestErrorPage(t *testing.T) {
	r := testRenderer(t, Config{})
	rec := httptest.NewRecorder()
	r.Error(rec, httptest.NewRequest("GET", "/ui/x", nil), http.StatusNotFound, "No machine <b>x</b>.")
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 404 || !strings.Contains(string(body), "No machine &lt;b&gt;x&lt;/b&gt;.") || rec.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("error page: %d %s", rec.Code, body)
	}
}
