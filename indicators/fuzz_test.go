package indicators

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/netward/netward/filter"
)

// checkSet asserts the invariants every parser promises on any input: every
// loaded indicator compiles, and every problem has a severity and a message.
func checkSet(t *testing.T, s *Set, err error) {
	if err != nil {
		if s != nil {
			t.Fatalf("non-nil set with error %v", err)
		}
		return
	}
	for _, p := range s.Problems {
		if p.Severity == "" || p.Message == "" {
			t.Fatalf("empty problem %+v", p)
		}
	}
	// Each rejected entry has at least one error problem.
	if s.Rejected > s.Errors() {
		t.Fatalf("%d entries rejected but only %d errors", s.Rejected, s.Errors())
	}
	// Without the explicit opt-in no indicator covers a whole family.
	for _, in := range s.Indicators {
		if in.Type == filter.TypeIP && isDefaultRoute(in.Value) {
			t.Fatalf("default route %q loaded without AllowDefaultRoute", in.Value)
		}
	}
	if _, _, cerr := s.Compile(testNow); cerr != nil {
		t.Fatalf("validated indicators do not compile: %v", cerr)
	}
}

func FuzzParseFeed(f *testing.F) {
	f.Add(readTestdata(f, "feed.json"))
	f.Add([]byte(`{"indicators":[{"indicatorValue":"a","indicatorType":"Url","action":"Warn","id":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseFeed("fuzz", b, Options{Now: testNow})
		checkSet(t, s, err)
	})
}

func FuzzParseMDEJSON(f *testing.F) {
	f.Add(readTestdata(f, "mde-api.json"))
	f.Add([]byte(`[{"indicatorValue":"192.0.2.0/24","indicatorType":"IpAddress","action":"Allowed"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseMDEJSON("fuzz", b, Options{})
		checkSet(t, s, err)
	})
}

func FuzzParseCSV(f *testing.F) {
	f.Add(readTestdata(f, "mde-import.csv"))
	f.Add(readTestdata(f, "mde-problems.csv"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCSV("fuzz", bytes.NewReader(b), Options{})
		checkSet(t, s, err)
	})
}

func FuzzParseHosts(f *testing.F) {
	f.Add(readTestdata(f, "stevenblack-excerpt.hosts"))
	f.Add(readTestdata(f, "stevenblack-excerpt.list"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseHosts("fuzz", bytes.NewReader(b), Options{})
		checkSet(t, s, err)
	})
}

func FuzzParseCatalog(f *testing.F) {
	f.Add(readTestdata(f, "catalog-excerpt.json"), readTestdata(f, "tags.json"))
	f.Add(readTestdata(f, "catalog-excerpt.json"), readTestdata(f, "tags.txt"))
	f.Fuzz(func(t *testing.T, catalog, tags []byte) {
		s, err := ParseCatalog("c", catalog, "t", tags, Options{})
		checkSet(t, s, err)
	})
}

func FuzzDetectAndParse(f *testing.F) {
	for _, n := range []string{"feed.json", "mde-api.json", "mde-import.csv", "catalog-excerpt.json", "stevenblack-excerpt.hosts"} {
		f.Add(n, readTestdata(f, n))
	}
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		s, err := Parse(name, b, FormatAuto, "t", []byte(`{"a":"Monitored"}`), Options{})
		checkSet(t, s, err)
	})
}

// FuzzFastIndicator holds the scanner's fast path to encoding/json: whatever
// it accepts must decode to exactly what encoding/json makes of the same
// bytes, and what it refuses must leave the scanner untouched for
// encoding/json to read.
func FuzzFastIndicator(f *testing.F) {
	for _, s := range []string{
		`{"id":"7","indicatorValue":"dropbox.com","indicatorType":"DomainName","action":"Warn","title":"t","application":"Dropbox","applicationId":11627,"expirationTime":null,"bypassDurationHours":2.5}`,
		`{ "id" : 12 , "indicatorValue" : "a\u00e9.example" }`,
		`{"IndicatorValue":"x","indicatorvalue":"y"}`,
		`{"action":5}`,
		`{"extra":{"nested":[1,2]},"indicatorValue":"x"}`,
		`{"expirationTime":"2099-01-01T00:00:00Z","expirationTime":null}`,
		`{"bypassDurationHours":1e400}`,
		`{"bypassDurationHours":-0.0e+1,"title":"\u00ff\ufffd","id":true}`,
		`{"indicatorValue":"caf` + "\xc3\xa9" + `","title":"` + "\xff" + `"}`,
		`{}`, `[]`, `{"a":1,}`, `{"id":01}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &scanner{b: b}
		var j jsonIndicator
		if !p.fastIndicator(&j) {
			if p.i != 0 || !reflect.DeepEqual(j, jsonIndicator{}) {
				t.Fatalf("refused %q but moved to %d / filled %+v", b, p.i, j)
			}
			return
		}
		var ref jsonIndicator
		if err := json.Unmarshal(b[:p.i], &ref); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json says %v", b[:p.i], err)
		}
		if !reflect.DeepEqual(j, ref) {
			t.Fatalf("%q:\nfast %+v\njson %+v", b[:p.i], j, ref)
		}
	})
}
