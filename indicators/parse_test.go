package indicators

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/filter"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "indicators", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func problemStrings(s *Set) []string {
	var out []string
	for _, p := range s.Problems {
		out = append(out, p.String())
	}
	return out
}

// wantProblems checks that every wanted fragment appears in its own problem,
// in order, and that there are no others.
func wantProblems(t *testing.T, s *Set, want ...string) {
	t.Helper()
	got := problemStrings(s)
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
		}
	}
}

func TestParseFeedContractExample(t *testing.T) {
	s, err := ParseFeed("feed.json", readTestdata(t, "feed.json"), Options{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "42" || s.Settings.WarnRedirectURL != "https://intranet.example/apps" || s.Settings.BypassDurationHours != 24 || s.Settings.Mode != "block" {
		t.Errorf("version/settings = %q %+v", s.Version, s.Settings)
	}
	wantProblems(t, s, "feed.json [2].expirationTime: warning: expired at 2020-01-01T00:00:00Z")
	in := s.Indicators[0]
	if in.Value != "dropbox.com" || in.Action != filter.Warn || in.Application != "Dropbox" || in.ApplicationID != "11627" || in.ID != "7" {
		t.Errorf("indicator 0 = %+v", in)
	}
	if s.Indicators[3].BypassDuration != 2*time.Hour {
		t.Errorf("bypass duration = %v", s.Indicators[3].BypassDuration)
	}
	p, next, err := s.Compile(testNow)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 3 {
		t.Errorf("compiled %d rules, want 3 (the expired one left out)", p.Len())
	}
	if want := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("next expiry = %v, want %v", next, want)
	}
	if m := p.MatchName("www.dropbox.com"); m.Action != filter.Warn {
		t.Errorf("www.dropbox.com = %v", m.Action)
	}
	if m := p.MatchName("old.example"); m.Action != 0 {
		t.Errorf("expired old.example still matches: %v", m.Action)
	}
	// At the expiry instant, to the second, the indicator stops applying.
	p2, _, _ := s.Compile(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	if m := p2.MatchName("soon.example"); m.Action != 0 {
		t.Errorf("soon.example applies at its expiry instant")
	}
}

// Unknown keys, at the top and in settings, are skipped with a warning
// (forward-compatible, and visible in validate); a wrongly typed setting is
// named by its path, in user words (issue 23).
func TestParseFeedUnknownKeys(t *testing.T) {
	doc := `{"version": "1", "future": {"x": 1}, "settings": {"mode": "audit", "zeta": 1, "alpha": true},
 "indicators": [{"indicatorValue": "ok.example", "indicatorType": "DomainName", "action": "Block"}]}`
	s, err := ParseFeed("f", []byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s,
		`f future: warning: unknown key "future" skipped`,
		`f settings.alpha: warning: unknown key "settings.alpha" skipped`,
		`f settings.zeta: warning: unknown key "settings.zeta" skipped`,
	)
	if s.Settings.Mode != "audit" || len(s.Indicators) != 1 {
		t.Errorf("known fields lost: %+v, %d indicators", s.Settings, len(s.Indicators))
	}
	_, err = ParseFeed("f", []byte(`{"version": "1", "settings": {"bypassDurationHours": "x"}, "indicators": []}`), Options{})
	if err == nil || !strings.Contains(err.Error(), `field "settings.bypassDurationHours" is a string; want a number`) || strings.Contains(err.Error(), "float64") {
		t.Errorf("bad setting type: %v", err)
	}
}

func TestParseFeedProblems(t *testing.T) {
	doc := `{"version": 3, "settings": {"mode": "strict", "warnRedirectUrl": "javascript:alert(1)", "bypassDurationHours": -1},
 "indicators": [
  {"indicatorValue": "ok.example", "indicatorType": "DomainName", "action": "Block"},
  {"indicatorValue": "a..b", "indicatorType": "DomainName", "action": "Block"},
  {"indicatorValue": "x.example", "indicatorType": "DomainName", "action": 5},
  {"indicatorValue": "y.example", "indicatorType": "CertificateThumbprint", "action": "Nope", "expirationTime": "soon"},
  {"indicatorValue": "OK.example.", "indicatorType": "DomainName", "action": "Allowed"}
 ]}`
	s, err := ParseFeed("f", []byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "3" {
		t.Errorf("numeric version = %q", s.Version)
	}
	wantProblems(t, s,
		"f settings.mode: error: mode \"strict\"",
		"f settings.warnRedirectUrl: error:",
		"f settings.bypassDurationHours: error:",
		"f [1].indicatorValue: error: DomainName \"a..b\"",
		"f [2].action: error: action is a number; want a string",
		"f [3].indicatorType: error: indicator type \"CertificateThumbprint\": file and certificate",
		"f [3].action: error: unknown action \"Nope\"",
		"f [3].expirationTime: error: expiration time \"soon\"",
		"f [4]: warning: DomainName \"ok.example\" is also listed at f [0] with action Block; the tie-break of CONTRACT §1 (Allowed > Warn > Block > Audit) applies Allowed",
	)
	if len(s.Indicators) != 2 {
		t.Errorf("loaded %d indicators, want 2", len(s.Indicators))
	}
	if _, err := ParseFeed("f", []byte(`{"version": "1"} trailing`), Options{}); err == nil {
		t.Error("trailing data accepted")
	}
	if _, err := ParseFeed("f", []byte(`[1,2]`), Options{}); err == nil {
		t.Error("an array accepted as a feed")
	}
}

func TestParseCSV(t *testing.T) {
	s, err := ParseCSV("mde-import.csv", bytes.NewReader(readTestdata(t, "mde-import.csv")), Options{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s)
	want := []struct {
		v   string
		typ filter.Type
		act filter.Action
	}{
		{"blocked.example", filter.TypeDomain, filter.Block},
		{"warn.example", filter.TypeDomain, filter.Warn},
		{"files.example/downloads/", filter.TypeURL, filter.Block},
		{"192.0.2.66/32", filter.TypeIP, filter.Audit},
		{"198.51.100.0/24", filter.TypeIP, filter.Allowed},
	}
	if len(s.Indicators) != len(want) {
		t.Fatalf("got %d indicators", len(s.Indicators))
	}
	for i, w := range want {
		in := s.Indicators[i]
		if in.Value != w.v || in.Type != w.typ || in.Action != w.act {
			t.Errorf("indicator %d = %q %v %v, want %q %v %v", i, in.Value, in.Type, in.Action, w.v, w.typ, w.act)
		}
	}
	if s.Indicators[0].Title != "Blocked site" || !s.Indicators[1].Expires.Equal(time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("title/expiry not carried: %+v", s.Indicators[:2])
	}
}

func TestParseCSVProblems(t *testing.T) {
	s, err := ParseCSV("p.csv", bytes.NewReader(readTestdata(t, "mde-problems.csv")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s,
		"p.csv:2:1 indicatorvalue: error: DomainName \"bad..name.example\"",
		"p.csv:3:50 indicatortype: error: indicator type \"FileSha1\"",
		"p.csv:4:12 ACTION: error: action BlockAndRemediate applies to files only",
		"p.csv:5:13 ACTION: error: unknown action \"Obliterate\"",
		"p.csv:6:32 expirationtime: error: expiration time \"next tuesday\"",
		"p.csv:8:1: warning: DomainName \"dup.example\" is also listed at p.csv:7:1 with action Block",
		"p.csv:9:1 indicatorvalue: error: IpAddress \"256.1.1.1\"",
	)
	for _, bad := range []string{"", "Value,Action\nx,Block\n"} {
		if _, err := ParseCSV("h.csv", strings.NewReader(bad), Options{}); err == nil {
			t.Errorf("ParseCSV(%q) accepted a file without the MDE header", bad)
		}
	}
	// A quoting error is reported with its position, not a panic or a hang.
	s, err = ParseCSV("q.csv", strings.NewReader("IndicatorType,IndicatorValue,Action\nDomainName,\"a.example,Block\n"), Options{})
	if err != nil || len(s.Problems) == 0 || s.Problems[0].Line != 2 {
		t.Errorf("unterminated quote: %v %v", err, problemStrings(s))
	}
}

func TestParseMDEJSON(t *testing.T) {
	s, err := ParseMDEJSON("api.json", readTestdata(t, "mde-api.json"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s,
		"api.json [2].indicatorType: error: indicator type \"FileSha256\"",
		"api.json [2].action: error: action BlockAndRemediate",
		"api.json [3].expirationTime: error: expirationTime is a number; want a string",
	)
	if len(s.Indicators) != 2 || s.Indicators[0].ID != "995" || s.Indicators[0].Action != filter.Block || s.Indicators[1].Value != "warn.example/path" {
		t.Errorf("indicators = %+v", s.Indicators)
	}
	// A bare array works too.
	s, err = ParseMDEJSON("a.json", []byte(`[{"indicatorValue":"x.example","indicatorType":"DomainName","action":"Alert"}]`), Options{})
	if err != nil || len(s.Indicators) != 1 || s.Indicators[0].Action != filter.Audit {
		t.Errorf("bare array: %v %+v", err, s)
	}
}

func TestParseHosts(t *testing.T) {
	s, err := ParseHosts("h", bytes.NewReader(readTestdata(t, "stevenblack-excerpt.hosts")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s)
	if len(s.Indicators) != 30 {
		t.Errorf("hosts: %d indicators, want 30 (localhost lines skipped)", len(s.Indicators))
	}
	for _, in := range s.Indicators {
		if in.Action != filter.Block || in.Type != filter.TypeDomain {
			t.Fatalf("%+v", in)
		}
	}
	s, err = ParseHosts("l", bytes.NewReader(readTestdata(t, "stevenblack-excerpt.list")), Options{Action: filter.Warn})
	if err != nil || len(s.Indicators) != 40 || s.Indicators[0].Action != filter.Warn || len(s.Problems) != 0 {
		t.Fatalf("list: %v %d %v", err, len(s.Indicators), problemStrings(s))
	}
	text := "0.0.0.0 a.example b.example # two names\nnot-an-ip c.example\n\n192.0.2.0/24\nbad_name!.example\n  d.example\tE.Example.\n0.0.0.0 localhost\n"
	s, err = ParseHosts("m", strings.NewReader(text), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s,
		"m:2:1: error: \"not-an-ip\" is not an IP address",
		"m:5:1: error: DomainName \"bad_name!.example\"",
		"m:6:3: error: \"d.example\" is not an IP address",
	)
	var got []string
	for _, in := range s.Indicators {
		got = append(got, in.Value)
	}
	if strings.Join(got, " ") != "a.example b.example 192.0.2.0/24" {
		t.Errorf("values = %v", got)
	}
}

func TestParseCatalog(t *testing.T) {
	for _, tags := range []string{"tags.json", "tags.txt"} {
		t.Run(tags, func(t *testing.T) {
			s, err := ParseCatalog("catalog.json", readTestdata(t, "catalog-excerpt.json"), tags, readTestdata(t, tags), Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := s.Compile(testNow)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]filter.Action{
				"www.dropbox.com": filter.Warn, "paper-attachments.s3.amazonaws.com": filter.Warn,
				"1337x.to": filter.Block, "0x0.st": 0, "115.com": 0,
			} {
				if m := p.MatchName(name); m.Action != want {
					t.Errorf("%s = %v, want %v", name, m.Action, want)
				}
			}
			m := p.MatchName("dropbox.com")
			if m.Rule == nil || m.Rule.Application() != "dropbox" || m.Rule.Title() != "Monitored app: dropbox" {
				t.Errorf("dropbox rule = %+v", m.Rule)
			}
			if tags == "tags.json" {
				wantProblems(t, s,
					"tags.json wetransfer: warning: app \"wetransfer\" is tagged Unsanctioned but is not in the catalog",
					"catalog.json [5].domains[1]: warning: \"google.com/drive\" has a path and is not propagated",
				)
				if m := p.MatchName("drive.google.com"); m.Action != filter.Warn || m.Rule.ApplicationID() != "10489" {
					t.Errorf("drive.google.com = %+v", m)
				}
				if m := p.MatchName("google.com"); m.Action != 0 {
					t.Errorf("google.com/drive was propagated as google.com")
				}
			}
		})
	}
	s, err := ParseCatalog("c", []byte(`[{"app":"A","domains":["a.example"]}]`), "t", []byte("A,Forbidden\nB\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s, "t:1:3: error: tag \"Forbidden\"", "t:2:1: error: want \"app,tag\"")
}

// A list's entries share one RuleMeta and derive their ids from it (a
// policy holds one Rule per entry); an application's indicators share one
// (issue 21).
func TestRulesMeta(t *testing.T) {
	hosts, err := ParseHosts("list.txt", strings.NewReader("0.0.0.0 a.example b.example\nc.example\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := hosts.Rules(testNow)
	if len(rules) != 3 {
		t.Fatalf("hosts rules = %+v, want 3", rules)
	}
	for i, want := range []string{"list.txt:1", "list.txt:1", "list.txt:2"} {
		r := &rules[i]
		// The id is derived from the line (no string per rule), the same
		// text the parser gave the indicator.
		if r.ID != "" || r.IndicatorID() != want || string(r.AppendID([]byte("x"))) != "x"+want || hosts.Indicators[i].ID != want {
			t.Errorf("hosts rule %q: ID %q, IndicatorID %q, indicator %q; want derived %q", r.Value, r.ID, r.IndicatorID(), hosts.Indicators[i].ID, want)
		}
		if r.Meta != rules[0].Meta || r.Title() != "" || r.Application() != "" {
			t.Errorf("hosts rule %q: Meta %+v, want the list's one shared Meta, no title or application", r.Value, r.Meta)
		}
	}
	cat, err := ParseCatalog("c", []byte(`[{"app":"A","domains":["a.example","b.example"]},{"app":"B","domains":["c.example"]}]`),
		"t", []byte("A,Monitored\nB,Monitored\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rules, _ = cat.Rules(testNow)
	byValue := map[string]*filter.Rule{}
	for i := range rules {
		byValue[rules[i].Value] = &rules[i]
	}
	a, a2, b := byValue["a.example"], byValue["b.example"], byValue["c.example"]
	if a == nil || a2 == nil || b == nil {
		t.Fatalf("catalog rules = %+v, want a.example, b.example, c.example", rules)
	}
	if a.Meta == nil || a.Meta != a2.Meta || a.Application() != "A" {
		t.Errorf("app A's rules: Meta %p %p, application %q; want one shared Meta of A", a.Meta, a2.Meta, a.Application())
	}
	if b.Meta == a.Meta || b.Application() != "B" {
		t.Errorf("app B's rule shares A's Meta or has application %q", b.Application())
	}
}

func TestDetectFormat(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"feed.json", FormatFeed}, {"mde-api.json", FormatJSON}, {"mde-import.csv", FormatCSV}, {"mde-problems.csv", FormatCSV},
		{"catalog-excerpt.json", FormatCatalog}, {"stevenblack-excerpt.hosts", FormatHosts}, {"stevenblack-excerpt.list", FormatHosts},
	} {
		if got := DetectFormat(tc.file, readTestdata(t, tc.file)); got != tc.want {
			t.Errorf("DetectFormat(%q) = %q, want %q", tc.file, got, tc.want)
		}
	}
}

// TestParseCSVRecoversAfterBadQuote is issue 14 §3: a stray quote on one row
// swallowed every row after it (encoding/csv reads on to the next quote).
// Now the row is reported and skipped, and the next line is read.
func TestParseCSVRecoversAfterBadQuote(t *testing.T) {
	tests := []struct {
		name     string
		csv      string
		values   []string
		problems []string
	}{
		{"unterminated quote on row 3 of 4",
			"IndicatorType,IndicatorValue,Action\nDomainName,a.example,Block\nDomainName,\"oops,Block\nDomainName,b.example,Block\n",
			[]string{"a.example", "b.example"}, []string{"q.csv:3:", "the row is skipped"}},
		{"bare quote inside a field",
			"IndicatorType,IndicatorValue,Action\nDomainName,x\"y.example,Block\nDomainName,b.example,Warn\r\n",
			[]string{"b.example"}, []string{"q.csv:2:13: error: bare \" in non-quoted-field"}},
		{"two bad rows, CRLF, blank lines, a good multi-line quoted title between",
			"IndicatorType,IndicatorValue,Action,Title\r\nDomainName,\"bad,Block,t\r\n\r\nDomainName,c.example,Block,\"two\r\nlines\"\r\nDomainName,d\"x,Block,t\r\nDomainName,e.example,Block,t\r\n",
			[]string{"c.example", "e.example"}, []string{"q.csv:2:", "q.csv:6:"}},
		{"bad quote on the last line", "IndicatorType,IndicatorValue,Action\nDomainName,f.example,Block\nDomainName,\"g",
			[]string{"f.example"}, []string{"q.csv:3:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseCSV("q.csv", strings.NewReader(tc.csv), Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range s.Indicators {
				got = append(got, in.Value)
			}
			if strings.Join(got, " ") != strings.Join(tc.values, " ") {
				t.Errorf("loaded %v, want %v; problems:\n%s", got, tc.values, strings.Join(problemStrings(s), "\n"))
			}
			errs := 0
			for _, p := range s.Problems {
				if p.Severity == SeverityError {
					errs++
				}
			}
			if errs != s.Rejected || errs == 0 {
				t.Errorf("%d errors, Rejected = %d", errs, s.Rejected)
			}
			all := strings.Join(problemStrings(s), "\n")
			for _, w := range tc.problems {
				if !strings.Contains(all, w) {
					t.Errorf("problems lack %q:\n%s", w, all)
				}
			}
		})
	}
	// The indicators after a recovery keep their real line numbers.
	s, _ := ParseCSV("q.csv", strings.NewReader(tests[2].csv), Options{})
	if p := s.Pos(1); p.Line != 7 {
		t.Errorf("e.example is at line %d, want 7", p.Line)
	}
}

// TestParseHostsBareAddressesAndDefaultRoute is issue 14 §5.
func TestParseHostsBareAddressesAndDefaultRoute(t *testing.T) {
	text := "0.0.0.0/0\n::/0\n198.51.100.7\n0.0.0.0\n127.0.0.1\n::ffff:0.0.0.0/96\n203.0.113.0/24\nok.example\n"
	s, err := ParseHosts("l.txt", strings.NewReader(text), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s,
		`l.txt:1:1: error: IpAddress "0.0.0.0/0" covers every address`,
		`l.txt:2:1: error: IpAddress "::/0" covers every address`,
		`l.txt:3:1: warning: 198.51.100.7 alone on a line is loaded as an IpAddress indicator (Block every connection to it)`,
		`l.txt:4:1: warning: 0.0.0.0 alone on a line: a hosts line without names; nothing loaded`,
		`l.txt:5:1: warning: 127.0.0.1 alone on a line`,
		`l.txt:6:1: error: IpAddress "::ffff:0.0.0.0/96" covers every address`,
	)
	var got []string
	for _, in := range s.Indicators {
		got = append(got, in.Value)
	}
	if strings.Join(got, " ") != "198.51.100.7/32 203.0.113.0/24 ok.example" {
		t.Errorf("loaded %v", got)
	}
	if s.Rejected != 3 {
		t.Errorf("Rejected = %d, want 3", s.Rejected)
	}
	// The explicit opt-in loads them, still with a warning.
	s, err = ParseHosts("l.txt", strings.NewReader("0.0.0.0/0\n"), Options{AllowDefaultRoute: true})
	if err != nil || len(s.Indicators) != 1 || s.Indicators[0].Value != "0.0.0.0/0" {
		t.Fatalf("allowed: %v %+v", err, s)
	}
	wantProblems(t, s, `l.txt:1:1: warning: IpAddress "0.0.0.0/0" covers every address (allowed by indicators.allowDefaultRoute)`)
	// Every format refuses it, not only lists.
	s, err = ParseCSV("d.csv", strings.NewReader("IndicatorType,IndicatorValue,Action\nIpAddress,::/0,Allowed\n"), Options{})
	if err != nil || len(s.Indicators) != 0 || s.Rejected != 1 {
		t.Errorf("CSV ::/0: %v %v", err, problemStrings(s))
	}
}

// TestParseHostsLongLineSkipped: a line over the limit is reported and
// skipped; the lines after it still load.
func TestParseHostsLongLineSkipped(t *testing.T) {
	text := "a.example\n" + strings.Repeat("x", maxLine+10) + "\nb.example\n"
	s, err := ParseHosts("long.txt", strings.NewReader(text), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, s, "long.txt:2: error: line longer than")
	if len(s.Indicators) != 2 || s.Indicators[1].Value != "b.example" || s.Pos(1).Line != 3 {
		t.Errorf("loaded %+v", s.Indicators)
	}
}
