package indicators

import (
	"bytes"
	"testing"
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
