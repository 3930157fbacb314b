package browser

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/chromedp/cdproto/emulation"
)

// axe-core, vendored unmodified from the npm registry (MPL-2.0; see
// axe/VERSION and axe/LICENSE).
//
//go:embed axe/axe.min.js
var axeSource string

const axeVersion = "4.14.1"

// Violation is one axe rule that failed, with the elements that fail it.
type Violation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"` // minor, moderate, serious, critical
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target  []any  `json:"target"`
		HTML    string `json:"html"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s: %s (%s)", v.Impact, v.ID, v.Help, v.HelpURL)
	for i, n := range v.Nodes {
		if i == 5 {
			fmt.Fprintf(&b, "\n      … and %d more", len(v.Nodes)-5)
			break
		}
		fmt.Fprintf(&b, "\n      %v  %s", n.Target, short(n.HTML))
		if n.Summary != "" {
			fmt.Fprintf(&b, "\n        %s", strings.ReplaceAll(strings.TrimSpace(n.Summary), "\n", "\n        "))
		}
	}
	return b.String()
}

// axeRun runs every axe rule (WCAG 2.0–2.2 A and AA plus best practices) on
// the whole document and returns the violations as JSON.
const axeRun = `(async () => {
  const r = await axe.run(document, {resultTypes: ['violations'], iframes: false});
  return JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target, html: n.html, summary: n.failureSummary}))})));
})()`

// AxeViolations injects axe-core through the DevTools protocol (so the
// page's CSP, which rightly forbids foreign scripts, does not apply and
// needs no weakening) and returns every violation on the current page.
func (p *Page) AxeViolations() []Violation {
	p.t.Helper()
	if p.noJS {
		// axe needs timers; the page's own scripts have already been
		// skipped, so enabling execution now runs only axe.
		p.Run("enable scripts for axe", emulation.SetScriptExecutionDisabled(false))
		defer p.Run("disable scripts again", emulation.SetScriptExecutionDisabled(true))
	}
	var loaded bool
	p.Eval(`typeof window.axe === 'object' && window.axe.version === '`+axeVersion+`'`, &loaded)
	if !loaded {
		p.Eval(axeSource+"\n;true", nil)
	}
	var raw string
	p.Eval(axeRun, &raw)
	var out []Violation
	if err := decodeJSON(raw, &out); err != nil {
		p.t.Fatalf("axe result: %v", err)
	}
	return out
}

// Axe fails the test on any serious or critical axe violation, listing
// them; minor and moderate ones are logged.
func (p *Page) Axe() {
	p.t.Helper()
	var bad, other []string
	for _, v := range p.AxeViolations() {
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, v.String())
		} else {
			other = append(other, v.String())
		}
	}
	where := p.vp.Name + " " + p.Location()
	if len(other) > 0 {
		p.t.Logf("axe %s: %d minor/moderate issue(s) at %s:\n    %s", axeVersion, len(other), where, strings.Join(other, "\n    "))
	}
	if len(bad) > 0 {
		p.t.Errorf("axe %s: %d serious/critical violation(s) at %s:\n    %s", axeVersion, len(bad), where, strings.Join(bad, "\n    "))
	}
}
