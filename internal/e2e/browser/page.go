package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Viewport is a window size to test at.
type Viewport struct {
	Name          string
	Width, Height int64
	Mobile        bool
	Scale         float64
}

// The two sizes every console page must work at: a laptop and a phone.
var (
	Desktop = Viewport{Name: "desktop", Width: 1280, Height: 800, Scale: 1}
	Phone   = Viewport{Name: "phone", Width: 390, Height: 844, Mobile: true, Scale: 1}
)

// Page is one browser tab of one test. Its methods fail the test with a
// readable message instead of returning errors. When the test ends the tab
// is closed and any console error, uncaught exception or CSP violation seen
// during the test fails it (TakeProblems drains them first for tests that
// provoke them on purpose).
type Page struct {
	t      testing.TB
	b      *Browser
	ctx    context.Context
	vp     Viewport
	mu     sync.Mutex
	probs  []string
	reqs   map[network.RequestID]*request
	noJS   bool
	loaded int
}

type request struct {
	url, typ    string
	decoded     int64
	transferred int64
	finished    bool
	failed      bool
	fromCache   bool
	status      int64
	mime        string
}

// cspListener reports Content-Security-Policy violations through the
// __netwardCSP binding; it runs before any page script (and is not subject
// to the page's CSP itself).
const cspListener = `document.addEventListener('securitypolicyviolation', function (e) {
  try { __netwardCSP(JSON.stringify({directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI,
    source: e.sourceFile, line: e.lineNumber, sample: e.sample})); } catch (err) {}
}, true);`

// NewPage opens a tab at the viewport. It skips the test when Chromium is
// missing (fails under NETWARD_E2E=require).
func (b *Browser) NewPage(t testing.TB, vp Viewport) *Page {
	t.Helper()
	b.require(t)
	tctx, cancelTab := chromedp.NewContext(b.ctx)
	ctx, cancelT := context.WithTimeout(tctx, b.cfg.Timeout)
	p := &Page{t: t, b: b, ctx: ctx, vp: vp, reqs: map[network.RequestID]*request{}}
	chromedp.ListenTarget(ctx, p.onEvent)
	t.Cleanup(func() {
		p.mu.Lock()
		probs := p.probs
		p.mu.Unlock()
		if len(probs) > 0 {
			t.Errorf("the page logged %d problem(s):\n  %s", len(probs), strings.Join(probs, "\n  "))
		}
		cancelT()
		_ = chromedp.Cancel(tctx)
		cancelTab()
	})
	if err := chromedp.Run(ctx,
		network.Enable(),
		network.SetCacheDisabled(true),
		cdplog.Enable(),
		runtime.AddBinding("__netwardCSP"),
		chromedp.ActionFunc(func(ctx context.Context) error {
			_, err := page.AddScriptToEvaluateOnNewDocument(cspListener).Do(ctx)
			return err
		}),
	); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	p.SetViewport(vp)
	return p
}

func (p *Page) problem(format string, args ...any) {
	p.mu.Lock()
	p.probs = append(p.probs, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

func (p *Page) onEvent(ev any) {
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
			var parts []string
			for _, a := range e.Args {
				if a.Value != nil {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			p.problem("console.%s: %s", e.Type, strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg = d.Exception.Description
		}
		p.problem("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
	case *runtime.EventBindingCalled:
		if e.Name == "__netwardCSP" {
			p.problem("CSP violation: %s", e.Payload)
		}
	case *cdplog.EventEntryAdded:
		if e.Entry.Level == cdplog.LevelError {
			p.problem("browser %s error: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		p.mu.Lock()
		p.reqs[e.RequestID] = &request{url: e.Request.URL, typ: string(e.Type)}
		p.mu.Unlock()
	case *network.EventResponseReceived:
		p.mu.Lock()
		if r := p.reqs[e.RequestID]; r != nil {
			r.typ, r.status, r.mime = string(e.Type), e.Response.Status, e.Response.MimeType
			r.fromCache = e.Response.FromDiskCache || e.Response.FromServiceWorker
		}
		p.mu.Unlock()
	case *network.EventDataReceived:
		p.mu.Lock()
		if r := p.reqs[e.RequestID]; r != nil {
			r.decoded += e.DataLength
		}
		p.mu.Unlock()
	case *network.EventLoadingFinished:
		p.mu.Lock()
		if r := p.reqs[e.RequestID]; r != nil {
			r.transferred, r.finished = int64(e.EncodedDataLength), true
		}
		p.mu.Unlock()
	case *network.EventLoadingFailed:
		p.mu.Lock()
		r := p.reqs[e.RequestID]
		if r != nil {
			r.failed = true
		}
		p.mu.Unlock()
		if r != nil && !e.Canceled {
			p.problem("request failed: %s %s (%s)", r.url, e.ErrorText, e.BlockedReason)
		}
	}
}

// TakeProblems returns and clears the console errors, exceptions and CSP
// violations seen so far.
func (p *Page) TakeProblems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.probs
	p.probs = nil
	return out
}

// Run runs chromedp actions on the tab, bounded by the action timeout.
func (p *Page) Run(what string, actions ...chromedp.Action) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.b.cfg.ActionTimeout)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// Context is the tab's chromedp context, for actions the helpers lack.
func (p *Page) Context() context.Context { return p.ctx }

// SetViewport resizes the tab.
func (p *Page) SetViewport(vp Viewport) {
	p.t.Helper()
	scale := vp.Scale
	if scale == 0 {
		scale = 1
	}
	p.vp = vp
	p.Run("set viewport "+vp.Name, chromedp.ActionFunc(func(ctx context.Context) error {
		if err := emulation.SetDeviceMetricsOverride(vp.Width, vp.Height, scale, vp.Mobile).Do(ctx); err != nil {
			return err
		}
		return emulation.SetTouchEmulationEnabled(vp.Mobile).Do(ctx)
	}))
}

// DisableJS turns script execution off (or on again) for the next loads,
// to prove that a page works without JavaScript.
func (p *Page) DisableJS(off bool) {
	p.t.Helper()
	p.noJS = off
	p.Run("script execution", emulation.SetScriptExecutionDisabled(off))
}

// Go navigates to url, waits for the load event, and starts a new
// page-weight measurement.
func (p *Page) Go(url string) {
	p.t.Helper()
	p.mu.Lock()
	p.reqs = map[network.RequestID]*request{}
	p.mu.Unlock()
	resp, err := chromedp.RunResponse(p.ctx, chromedp.Navigate(url))
	if err != nil {
		p.t.Fatalf("navigate to %s: %v", url, err)
	}
	if resp != nil && resp.Status >= 400 {
		p.t.Fatalf("navigate to %s: HTTP %d", url, resp.Status)
	}
}

// Click clicks the first element matching the CSS selector.
func (p *Page) Click(sel string) {
	p.t.Helper()
	p.Run("click "+sel, chromedp.Click(sel, chromedp.ByQuery, chromedp.NodeVisible))
}

// ClickAndWaitLoad clicks an element that navigates and waits for the new
// page (a link or a submit button without JavaScript).
func (p *Page) ClickAndWaitLoad(sel string) {
	p.t.Helper()
	p.mu.Lock()
	p.reqs = map[network.RequestID]*request{}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, p.b.cfg.ActionTimeout)
	defer cancel()
	loaded := make(chan struct{}, 1)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	chromedp.ListenTarget(lctx, func(ev any) {
		if _, ok := ev.(*page.EventLoadEventFired); ok {
			select {
			case loaded <- struct{}{}:
			default:
			}
		}
	})
	if err := chromedp.Run(ctx, chromedp.Click(sel, chromedp.ByQuery, chromedp.NodeVisible)); err != nil {
		p.t.Fatalf("click %s: %v", sel, err)
	}
	select {
	case <-loaded:
	case <-ctx.Done():
		p.t.Fatalf("click %s: no page load followed", sel)
	}
}

// Fill types value into the input matching sel, replacing its content, so
// the page sees real key and input events.
func (p *Page) Fill(sel, value string) {
	p.t.Helper()
	p.Run("fill "+sel, chromedp.Clear(sel, chromedp.ByQuery), chromedp.SendKeys(sel, value, chromedp.ByQuery))
}

// WaitVisible waits until an element matching sel is visible.
func (p *Page) WaitVisible(sel string) {
	p.t.Helper()
	p.Run("wait for "+sel, chromedp.WaitVisible(sel, chromedp.ByQuery))
}

// WaitFor waits until the JavaScript expression is truthy (polled every
// 20 ms in the page), for state that no selector shows: a live region's
// text, a URL, a variable.
func (p *Page) WaitFor(expr string) {
	p.t.Helper()
	ms := p.b.cfg.ActionTimeout.Milliseconds() - 500
	js := fmt.Sprintf(`new Promise((resolve, reject) => { const t0 = Date.now();
  (function poll() { let ok = false; try { ok = !!(%s); } catch (e) {}
    if (ok) resolve(true); else if (Date.now() - t0 > %d) reject(new Error('timed out')); else setTimeout(poll, 20); })(); })`, expr, ms)
	p.Run("wait for "+short(expr), chromedp.Evaluate(js, nil, func(ep *runtime.EvaluateParams) *runtime.EvaluateParams {
		return ep.WithAwaitPromise(true)
	}))
}

// WaitGone waits until no element matches sel.
func (p *Page) WaitGone(sel string) {
	p.t.Helper()
	p.Run("wait for "+sel+" to go", chromedp.WaitNotPresent(sel, chromedp.ByQuery))
}

// Text returns the text content of the first element matching sel.
func (p *Page) Text(sel string) string {
	p.t.Helper()
	var s string
	p.Run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery, chromedp.NodeReady))
	return strings.TrimSpace(s)
}

// Texts returns the trimmed text of every element matching sel, in
// document order (empty when none match).
func (p *Page) Texts(sel string) []string {
	p.t.Helper()
	var out []string
	p.Eval(fmt.Sprintf(`Array.from(document.querySelectorAll(%q), e => e.textContent.trim())`, sel), &out)
	return out
}

// Count returns how many elements match sel.
func (p *Page) Count(sel string) int {
	p.t.Helper()
	var n int
	p.Eval(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n)
	return n
}

// Attr returns an attribute of the first element matching sel ("" if
// absent).
func (p *Page) Attr(sel, name string) string {
	p.t.Helper()
	var v string
	p.Eval(fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e&&e.getAttribute(%q)||""})()`, sel, name), &v)
	return v
}

// Location returns the tab's current URL.
func (p *Page) Location() string {
	p.t.Helper()
	var u string
	p.Run("read location", chromedp.Location(&u))
	return u
}

// Eval evaluates a JavaScript expression through the DevTools protocol
// (not subject to the page's CSP, and working with page scripts disabled)
// and decodes its JSON value into out (nil to ignore it). A promise is
// awaited.
func (p *Page) Eval(expr string, out any) {
	p.t.Helper()
	p.Run("evaluate "+short(expr), chromedp.Evaluate(expr, out, func(ep *runtime.EvaluateParams) *runtime.EvaluateParams {
		return ep.WithAwaitPromise(true)
	}))
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// Screenshot saves a full-page PNG as name.png in the screenshot directory
// when NETWARD_SCREENSHOTS=1, and returns its path; otherwise it does
// nothing and returns "" (tests never touch tracked files by default).
func (p *Page) Screenshot(name string) string {
	p.t.Helper()
	if os.Getenv("NETWARD_SCREENSHOTS") != "1" {
		return ""
	}
	dir := p.b.cfg.ScreenshotDir
	if dir == "" {
		p.t.Fatalf("NETWARD_SCREENSHOTS=1 but no screenshot directory: set Config.ScreenshotDir or NETWARD_SCREENSHOTS_DIR")
	}
	var buf []byte
	p.Run("screenshot "+name, chromedp.FullScreenshot(&buf, 100))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatalf("write screenshot: %v", err)
	}
	p.t.Logf("screenshot: %s", path)
	return path
}

// Weight is the page weight of the last navigation: every response of the
// document and its subresources (and of requests the page made since).
type Weight struct {
	Requests int
	// Decoded is the uncompressed body size, Transferred the bytes on the
	// wire (compressed bodies plus headers).
	Decoded, Transferred int64
	ByType               map[string]int64 // decoded bytes per resource type
	Unfinished           []string         // URLs still loading
}

func (w Weight) String() string {
	var types []string
	for t := range w.ByType {
		types = append(types, t)
	}
	sort.Strings(types)
	var parts []string
	for _, t := range types {
		parts = append(parts, fmt.Sprintf("%s %.1f KB", t, float64(w.ByType[t])/1024))
	}
	return fmt.Sprintf("%.1f KB uncompressed (%.1f KB transferred) in %d requests: %s",
		float64(w.Decoded)/1024, float64(w.Transferred)/1024, w.Requests, strings.Join(parts, ", "))
}

// Weight returns the page weight so far. Call it after the page settled
// (after Go, or a WaitVisible of the last thing to load).
func (p *Page) Weight() Weight {
	p.t.Helper()
	// Let pending loadingFinished events arrive: one round trip suffices
	// for requests the browser has finished, since it sends their events
	// before answering a later command. The favicon is different: Chromium
	// asks for it after the load event, so right after Go it may still be
	// in flight (the flake of TestStyleGuideBrowser). Wait, bounded, until
	// every request seen has finished.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.Eval(`document.readyState`, nil)
		p.mu.Lock()
		pending := 0
		for _, r := range p.reqs {
			if !r.finished && !r.failed && !strings.HasPrefix(r.url, "data:") {
				pending++
			}
		}
		p.mu.Unlock()
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := Weight{ByType: map[string]int64{}}
	for _, r := range p.reqs {
		if strings.HasPrefix(r.url, "data:") {
			continue
		}
		w.Requests++
		w.Decoded += r.decoded
		w.Transferred += r.transferred
		w.ByType[r.typ] += r.decoded
		if !r.finished {
			w.Unfinished = append(w.Unfinished, r.url)
		}
	}
	return w
}

// decodeJSON is json.Unmarshal with the harness's error wording.
func decodeJSON(data string, out any) error {
	if err := json.Unmarshal([]byte(data), out); err != nil {
		return fmt.Errorf("decode %q: %w", short(data), err)
	}
	return nil
}
