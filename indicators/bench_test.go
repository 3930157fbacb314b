package indicators

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netward/netward/filter"
)

// The 1,000,000-indicator load benchmark (issue 3, "Measured, in the README"):
// what the agent does with a new feed body — verify its Ed25519 signature,
// parse and validate every indicator, compile the policy — against a
// baseline that only decodes the same JSON into structs and builds a plain
// map of name → action (no validation, no canonicalisation, no signature),
// which is the least any loader must do. Run with
//
//	go test -run '^$' -bench Load -benchmem ./indicators/
//
// Besides ns/op and B/op each sub-benchmark reports peak-heap-MB (the largest
// live heap sampled while loading) and, for netward, the split between the
// three stages.
const loadBenchSize = 1_000_000

// benchFeed is a signed feed body of loadBenchSize indicators: every name of
// the StevenBlack list in shared/data (when present), then synthetic names
// from its vocabulary, 2 % IP/CIDR and 1 % URL indicators, with a realistic
// action mix (Block-heavy, some Warn/Audit/Allowed).
type benchFeed struct {
	body  []byte
	sig   string
	pub   ed25519.PublicKey
	first string // the first domain indicator's value
}

var loadFeed = sync.OnceValue(func() benchFeed { return makeBenchFeed(loadBenchSize) })

func sharedList() []string {
	dir, err := os.Getwd()
	if err != nil {
		return nil
	}
	for range 6 {
		p := filepath.Join(dir, "shared", "data", "blocklist-stevenblack.txt")
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			var names []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				s := strings.TrimSpace(sc.Text())
				if s != "" && !strings.HasPrefix(s, "#") {
					names = append(names, s)
				}
			}
			return names
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

func makeBenchFeed(n int) benchFeed {
	r := rand.New(rand.NewPCG(7, 11))
	list := sharedList()
	if len(list) == 0 {
		list = []string{"example.com", "example.net", "example.org", "ads.example.com"}
	}
	var labels, tlds []string
	for _, s := range list {
		ls := strings.Split(s, ".")
		if len(ls) >= 2 {
			labels = append(labels, ls[len(ls)-2][:min(len(ls[len(ls)-2]), 40)])
			tlds = append(tlds, ls[len(ls)-1])
		}
	}
	actions := []string{"Block", "Block", "Block", "Block", "Block", "Block", "Warn", "Warn", "Audit", "Allowed"}
	doc := Document{Version: "bench-1m", GeneratedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	seen := make(map[string]bool, n)
	for i := 0; len(doc.Indicators) < n; i++ {
		di := DocIndicator{ID: fmt.Sprint(i), Action: actions[r.IntN(len(actions))], Title: "bench"}
		switch k := r.IntN(100); {
		case k < 2:
			di.IndicatorType = "IpAddress"
			di.IndicatorValue = fmt.Sprintf("100.%d.%d.%d", 64+r.IntN(64), r.IntN(256), r.IntN(256))
		case k < 3:
			di.IndicatorType = "Url"
			di.IndicatorValue = fmt.Sprintf("http://%s.%s/p%d/", labels[r.IntN(len(labels))], tlds[r.IntN(len(tlds))], r.IntN(1000))
		default:
			di.IndicatorType = "DomainName"
			if i < len(list) {
				di.IndicatorValue = list[i]
			} else {
				di.IndicatorValue = fmt.Sprintf("%s%d.%s.%s", labels[r.IntN(len(labels))], r.IntN(100000),
					labels[r.IntN(len(labels))], tlds[r.IntN(len(tlds))])
			}
		}
		if seen[di.IndicatorValue] {
			continue
		}
		seen[di.IndicatorValue] = true
		doc.Indicators = append(doc.Indicators, di)
	}
	body, err := doc.Marshal()
	if err != nil {
		panic(err)
	}
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	return benchFeed{body: body, pub: pub, first: firstDomain(doc), sig: "ed25519=" + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, body))}
}

// heapPeak samples the live heap every millisecond until stop is called and
// returns the largest value seen, in bytes.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak.Load() }
}

func BenchmarkLoad(b *testing.B) {
	feed := loadFeed()
	b.Logf("feed: %d indicators, %.1f MB body", loadBenchSize, float64(len(feed.body))/1e6)
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

	b.Run("netward", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(feed.body)))
		runtime.GC()
		stop := heapPeak()
		var verify, parse, compile time.Duration
		var pol *filter.Policy
		for b.Loop() {
			t0 := time.Now()
			if err := Verify(feed.pub, feed.body, feed.sig); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			set, err := ParseFeed("bench", feed.body, Options{Now: now})
			if err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			pol, _, err = set.Compile(now)
			if err != nil {
				b.Fatal(err)
			}
			t3 := time.Now()
			verify, parse, compile = verify+t1.Sub(t0), parse+t2.Sub(t1), compile+t3.Sub(t2)
			if len(set.Indicators) != loadBenchSize {
				b.Fatalf("loaded %d indicators, want %d (problems: %v)", len(set.Indicators), loadBenchSize, set.Problems[:min(3, len(set.Problems))])
			}
		}
		peak := stop()
		if m := pol.MatchName(strings.ToUpper(feed.first) + "."); m.Rule == nil {
			b.Fatal("compiled policy does not match the feed's first name")
		}
		n := float64(b.N)
		b.ReportMetric(float64(verify.Milliseconds())/n, "verify-ms/op")
		b.ReportMetric(float64(parse.Milliseconds())/n, "parse-ms/op")
		b.ReportMetric(float64(compile.Milliseconds())/n, "compile-ms/op")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	})

	b.Run("baseline-json-map", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(feed.body)))
		runtime.GC()
		stop := heapPeak()
		for b.Loop() {
			var doc struct {
				Indicators []struct {
					IndicatorValue string `json:"indicatorValue"`
					Action         string `json:"action"`
				} `json:"indicators"`
			}
			if err := json.Unmarshal(feed.body, &doc); err != nil {
				b.Fatal(err)
			}
			m := make(map[string]string, len(doc.Indicators))
			for _, in := range doc.Indicators {
				m[in.IndicatorValue] = in.Action
			}
			if len(m) != loadBenchSize {
				b.Fatalf("map has %d entries", len(m))
			}
		}
		b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MB")
	})
}

func firstDomain(d Document) string {
	for _, in := range d.Indicators {
		if in.IndicatorType == "DomainName" {
			return in.IndicatorValue
		}
	}
	return ""
}
