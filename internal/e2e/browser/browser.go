// Package browser is the headless-Chromium harness of the console's browser
// tests, over chromedp: one browser per test package (started on first use,
// closed by TestMain), a fresh tab per test with its viewport, helpers to
// navigate, fill, click, wait and read, page-weight measurement from the
// network domain, full-page screenshots on demand, and checks that fail the
// test on any console error, uncaught exception or Content-Security-Policy
// violation, and on any serious or critical axe-core accessibility
// violation.
//
//	var bw = browser.New(browser.Config{})
//
//	func TestMain(m *testing.M) { code := m.Run(); bw.Close(); os.Exit(code) }
//
//	func TestPage(t *testing.T) {
//		p := bw.NewPage(t, browser.Desktop)
//		p.Go(srv.URL + "/ui/styleguide")
//		p.Axe()           // fails on serious/critical violations
//		p.Screenshot("styleguide-desktop")
//	}
//
// Chromium runs headless without sandbox, GPU, QUIC, background networking,
// component updates or sync, on a throwaway profile, and resolves no name
// but those in Config.Hosts: a test browser never reaches the network.
// Without Chromium the tests skip, or fail under NETWARD_E2E=require.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/netward/netward/internal/e2e"
)

// Config describes the browser of a test package.
type Config struct {
	// ExecPath is the browser binary; default $NETWARD_CHROMIUM, then
	// /usr/bin/chromium, then chromium, chromium-browser or google-chrome on
	// PATH.
	ExecPath string
	// Hosts maps host names to "ip:port" or "ip" for the browser's resolver;
	// every other name except 127.0.0.1 fails to resolve.
	Hosts map[string]string
	// ScreenshotDir receives Screenshot's PNGs when NETWARD_SCREENSHOTS=1
	// ($NETWARD_SCREENSHOTS_DIR overrides it).
	ScreenshotDir string
	// Timeout bounds each test's page; default 90 s. Each single action is
	// bounded by ActionTimeout (default 15 s) so a missing element fails
	// fast with its selector.
	Timeout, ActionTimeout time.Duration
	// IgnoreCertErrors accepts any TLS certificate: for a real console on
	// its self-signed certificate (the browser has no way to pin it).
	IgnoreCertErrors bool
}

// Browser is one Chromium process shared by the tests of a package.
type Browser struct {
	cfg     Config
	once    sync.Once
	err     error
	skip    string
	ctx     context.Context
	cancels []context.CancelFunc
	profile string
}

// New describes the browser; it starts nothing until the first NewPage.
func New(cfg Config) *Browser {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 90 * time.Second
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = 15 * time.Second
	}
	if d := os.Getenv("NETWARD_SCREENSHOTS_DIR"); d != "" {
		cfg.ScreenshotDir = d
	}
	return &Browser{cfg: cfg}
}

// findChromium returns the browser binary or "". An ExecPath that is set
// is the only candidate: a test that names its browser gets that one.
func (b *Browser) findChromium() string {
	if b.cfg.ExecPath != "" {
		if st, err := os.Stat(b.cfg.ExecPath); err == nil && !st.IsDir() {
			return b.cfg.ExecPath
		}
		return ""
	}
	for _, p := range []string{os.Getenv("NETWARD_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// start launches Chromium once.
func (b *Browser) start() {
	if os.Getenv("NETWARD_E2E") == "off" {
		b.skip = "NETWARD_E2E=off"
		return
	}
	exe := b.findChromium()
	if exe == "" {
		b.skip = "headless Chromium not found (apt-get install -y chromium, or set NETWARD_CHROMIUM)"
		return
	}
	profile, err := os.MkdirTemp("", "netward-chromium-")
	if err != nil {
		b.err = fmt.Errorf("browser profile: %w", err)
		return
	}
	b.profile = profile
	var rules []string
	hosts := make([]string, 0, len(b.cfg.Hosts))
	for h := range b.cfg.Hosts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		rules = append(rules, "MAP "+h+" "+b.cfg.Hosts[h])
	}
	rules = append(rules, "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1", "EXCLUDE localhost")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("ignore-certificate-errors", b.cfg.IgnoreCertErrors),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.Flag("host-resolver-rules", strings.Join(rules, ",")),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithErrorf(quietErrorf))
	b.cancels = []context.CancelFunc{cancelB, cancelA}
	if err := chromedp.Run(ctx); err != nil {
		b.err = fmt.Errorf("start Chromium %s: %w", exe, err)
		return
	}
	b.ctx = ctx
}

// quietErrorf drops chromedp's complaints about protocol events newer than
// its cdproto (a newer Chromium is fine) and prints the rest.
func quietErrorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "unmarshal event") || strings.Contains(msg, "unhandled") || strings.Contains(msg, "unknown") {
		return
	}
	fmt.Fprintln(os.Stderr, "chromedp:", msg)
}

// Close stops the browser and removes its profile. Call it from TestMain
// after m.Run.
func (b *Browser) Close() {
	for _, c := range b.cancels {
		c()
	}
	if b.profile == "" {
		return
	}
	// Chromium's helpers may write to the profile for a moment after exit.
	for range 50 {
		if os.RemoveAll(b.profile) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// require starts the browser on first use and skips or fails t without it.
func (b *Browser) require(t testing.TB) {
	t.Helper()
	b.once.Do(b.start)
	if b.err != nil {
		t.Fatal(b.err)
	}
	if b.skip != "" {
		if os.Getenv("NETWARD_E2E") == "require" && b.skip != "NETWARD_E2E=off" {
			t.Fatal(b.skip + " (NETWARD_E2E=require)")
		}
		e2e.Skip(t, b.skip)
	}
}

// errNotFound is returned by lookups of absent elements.
var errNotFound = errors.New("no element matches")
