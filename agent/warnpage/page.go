package warnpage

import (
	"html/template"
	"net/url"
)

// pageData is everything a page shows. Every field is escaped by html/template.
type pageData struct {
	Kind     string // "warn", "block", "wait", "error"
	Site     string
	App      string
	Title    string
	ID       string
	OrgURL   string // warnRedirectUrl / blockRedirectUrl, only http(s)
	OrgText  string
	Token    string
	Path     string // the URL path the user asked for
	Message  string
	Target   string // where the wait page goes once the site is reachable
	Wait     int    // seconds the no-JS fallback waits before reloading
	PollMs   int
	Nonce    string // CSP nonce of the inline script
	Expires  string
	Bypassed bool
	Continue string // the continue endpoint
}

// safeLink returns u if it is an absolute http(s) URL, else "": an admin's
// typo must not become a javascript: link on the page.
func safeLink(u string) string {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	return p.String()
}

// The page is plain HTML: no external resources, readable without CSS, usable
// without JavaScript (the script only automates the retry after Continue).
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
{{if eq .Kind "wait"}}<meta http-equiv="refresh" content="{{.Wait}};url={{.Target}}">{{end}}
<title>{{if eq .Kind "warn"}}Warning: {{.Site}}{{else if eq .Kind "block"}}Blocked: {{.Site}}{{else if eq .Kind "wait"}}Opening {{.Site}}{{else}}netward{{end}} — netward</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f4f5;color:#18181b}
main{max-width:36rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px;border-top:6px solid {{if eq .Kind "block"}}#b91c1c{{else if eq .Kind "warn"}}#b45309{{else}}#1d4ed8{{end}}}
h1{font-size:1.4rem;margin:0 0 1rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
button{font:inherit;padding:.6rem 1.2rem;border-radius:6px;border:2px solid #18181b;background:#fff;cursor:pointer}
button:focus{outline:3px solid #1d4ed8;outline-offset:2px}
footer{margin-top:2rem;font-size:.85rem;color:#52525b}
</style>
</head>
<body>
<main>
{{if eq .Kind "warn"}}
<h1>This site needs your confirmation</h1>
<p>Your organisation monitors the use of <strong>{{.Site}}</strong>{{if .App}} ({{.App}}){{end}}. You may continue, but your organisation will be able to see that you did.</p>
{{else if eq .Kind "block"}}
<h1>This site is blocked</h1>
<p>Your organisation does not allow <strong>{{.Site}}</strong>{{if .App}} ({{.App}}){{end}} on this device.</p>
{{else if eq .Kind "wait"}}
<h1>Opening {{.Site}}…</h1>
<p role="status">{{if .Bypassed}}You chose to continue{{if .Expires}} until {{.Expires}}{{end}}.{{else}}This site is not blocked now.{{end}} This device still remembers the old address of the site for a few seconds; the page opens by itself as soon as it can.</p>
<p><a href="{{.Target}}">Open {{.Site}} now</a></p>
{{else}}
<h1>netward</h1>
<p>{{.Message}}</p>
{{end}}
{{if or (eq .Kind "warn") (eq .Kind "block")}}
<dl>
<dt>Site</dt><dd>{{.Site}}</dd>
{{if .App}}<dt>Application</dt><dd>{{.App}}</dd>{{end}}
{{if .Title}}<dt>Reason</dt><dd>{{.Title}}</dd>{{end}}
{{if .ID}}<dt>Indicator</dt><dd>{{.ID}}</dd>{{end}}
</dl>
{{if .OrgURL}}<p><a href="{{.OrgURL}}">{{if eq .Kind "warn"}}Learn more and see the approved apps{{else}}Learn more or ask for access{{end}}</a></p>{{end}}
{{end}}
{{if eq .Kind "warn"}}
<form method="post" action="{{.Continue}}">
<input type="hidden" name="token" value="{{.Token}}">
<input type="hidden" name="path" value="{{.Path}}">
<button type="submit" id="continue">Continue to {{.Site}}</button>
</form>
<p>Or, from a terminal: <code>netward bypass {{.Site}}</code></p>
{{end}}
{{if .OrgText}}<p>{{.OrgText}}</p>{{end}}
<footer>Shown by netward, the network protection on this device.</footer>
</main>
{{if eq .Kind "wait"}}
<script nonce="{{.Nonce}}">
(function(){
  var target = {{.Target}}, deadline = Date.now() + {{.Wait}} * 1000;
  function go(){ location.replace(target); }
  function tick(){
    fetch("/.netward/status", {cache: "no-store", credentials: "omit"}).then(function(r){
      // A response without our header means the name now resolves to the real site.
      if (!r.headers.get("Netward-Sink")) { go(); return; }
      return r.json().then(function(s){
        if (s.verdict === "warn" || s.verdict === "block") { location.reload(); return; }
        if (Date.now() >= deadline) { go(); return; }
        setTimeout(tick, {{.PollMs}});
      });
    }, go);
  }
  setTimeout(tick, {{.PollMs}});
})();
</script>
{{end}}
</body>
</html>
`))
