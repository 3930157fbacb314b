package filter

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// Benchmarks of the policy engine against the map-walk baseline (refPolicy,
// the first implementation: map[string]*Rule probed for every suffix).
//
// Rule set: the StevenBlack unified hosts list (83,808 names) plus synthetic
// names drawn from its own vocabulary up to 1,000,000 rules. The list is read
// from shared/data/blocklist-stevenblack.txt next to the repository (or
// $NETWARD_BENCH_LIST); without it, testdata/stevenblack-sample.txt seeds the
// same generator. Generation is deterministic.
//
// Queries: 30 % hits (a listed name, or one or two labels below it) and 70 %
// misses (names of the same shape that nothing matches), half with a trailing
// dot, in random order.
//
//	make bench                       # everything, BENCHTIME=1s
//	go test -run '^$' -bench 'MatchName|Compile' -benchmem ./filter/

const (
	benchRules   = 1_000_000
	benchQueries = 1 << 16
	benchList    = "blocklist-stevenblack.txt"
)

type benchData struct {
	source  string
	names   []string         // benchRules canonical names, real ones first
	queries map[int][]string // by rule count
}

var benchSizes = []struct {
	label string
	n     int
}{{"10K", 10_000}, {"1M", benchRules}}

var benchSet = sync.OnceValue(func() *benchData { return makeBenchData(benchRules) })

// findList looks for the full StevenBlack list in shared/data beside the
// repository or one of its parents (worktrees sit deeper than the main checkout).
func findList() string {
	if p := os.Getenv("NETWARD_BENCH_LIST"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for i := 0; i < 6; i++ {
		p := filepath.Join(dir, "shared", "data", benchList)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		dir = filepath.Dir(dir)
	}
	return ""
}

func readNames(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if n, err := CanonicalName(s); err == nil {
			names = append(names, n)
		}
	}
	return names
}

// nameGen makes realistic names from a real list's vocabulary: its TLDs,
// registrable labels and subdomain labels with their frequencies, and its
// distribution of depths.
type nameGen struct {
	r                *rand.Rand
	tlds, regs, subs []string
	depths           []int
	recent           []string // registrable domains to reuse for siblings
}

func newNameGen(seed []string, r *rand.Rand) *nameGen {
	g := &nameGen{r: r}
	for _, n := range seed {
		ls := strings.Split(n, ".")
		if len(ls) < 2 {
			continue
		}
		g.depths = append(g.depths, len(ls))
		g.tlds = append(g.tlds, ls[len(ls)-1])
		g.regs = append(g.regs, ls[len(ls)-2])
		g.subs = append(g.subs, ls[:len(ls)-2]...)
	}
	return g
}

func (g *nameGen) pick(s []string) string { return s[g.r.IntN(len(s))] }

// registrable returns a new second-level label: a real one changed so that
// it is (almost always) new, with the real length distribution.
func (g *nameGen) registrable() string {
	a := g.pick(g.regs)
	switch g.r.IntN(4) {
	case 0:
		b := g.pick(g.regs)
		return a + b[:min(len(b), 1+g.r.IntN(6))]
	case 1:
		return a + strconv.Itoa(g.r.IntN(1000))
	case 2:
		b := []byte(a)
		b[g.r.IntN(len(b))] = "abcdefghijklmnopqrstuvwxyz0123456789"[g.r.IntN(36)]
		return string(b) + g.pick(g.regs)[:1]
	default:
		return g.pick(g.regs) + "-" + a
	}
}

func (g *nameGen) name() string {
	depth := g.pick2(g.depths)
	var reg string
	if len(g.recent) > 0 && g.r.IntN(10) < 3 {
		reg = g.recent[g.r.IntN(len(g.recent))]
	} else {
		reg = g.registrable() + "." + g.pick(g.tlds)
		if len(g.recent) < 4096 {
			g.recent = append(g.recent, reg)
		} else {
			g.recent[g.r.IntN(len(g.recent))] = reg
		}
	}
	var b strings.Builder
	for i := 2; i < depth; i++ {
		s := g.pick(g.subs)
		if g.r.IntN(3) == 0 {
			s += strconv.Itoa(g.r.IntN(100))
		}
		b.WriteString(s)
		b.WriteByte('.')
	}
	b.WriteString(reg)
	return b.String()
}

func (g *nameGen) pick2(s []int) int { return s[g.r.IntN(len(s))] }

func makeBenchData(n int) *benchData {
	d := &benchData{source: findList()}
	real := readNames(d.source)
	if len(real) == 0 {
		d.source = "testdata/stevenblack-sample.txt (full list not found)"
		real = readNames("testdata/stevenblack-sample.txt")
	}
	r := rand.New(rand.NewPCG(2026, 11))
	seen := make(map[string]struct{}, n)
	for _, s := range real {
		if _, ok := seen[s]; !ok && len(d.names) < n {
			seen[s] = struct{}{}
			d.names = append(d.names, s)
		}
	}
	g := newNameGen(real, r)
	for len(d.names) < n {
		s := g.name()
		if !isCanonical(s) { // labels grown past 63 octets
			continue
		}
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			d.names = append(d.names, s)
		}
	}
	// Misses come from the same generator; a candidate that any listed
	// suffix matches is thrown away.
	listed := func(q string) bool {
		for {
			if _, ok := seen[q]; ok {
				return true
			}
			i := strings.IndexByte(q, '.')
			if i < 0 {
				return false
			}
			q = q[i+1:]
		}
	}
	mg := newNameGen(real, rand.New(rand.NewPCG(7, 7)))
	var misses []string
	for len(misses) < benchQueries {
		q := mg.name()
		if isCanonical(q) && !listed(q) {
			misses = append(misses, q)
		}
	}
	d.queries = map[int][]string{}
	for _, size := range benchSizes {
		d.queries[size.n] = makeQueries(d.names[:size.n], misses, g.subs, rand.New(rand.NewPCG(uint64(size.n), 3)))
	}
	return d
}

// makeQueries mixes 30 % hits on names (60 % the name itself, 20 % one and
// 20 % two labels below it) with 70 % misses, half with a trailing dot.
func makeQueries(names, misses, subs []string, r *rand.Rand) []string {
	qs := make([]string, 0, benchQueries)
	for len(qs) < benchQueries {
		var q string
		if r.IntN(10) < 3 {
			q = names[r.IntN(len(names))]
			for k := r.IntN(5); k > 2; k-- {
				q = subs[r.IntN(len(subs))] + "." + q
			}
		} else {
			q = misses[r.IntN(len(misses))]
		}
		if r.IntN(2) == 0 {
			q += "."
		}
		qs = append(qs, q)
	}
	// Lay the queries out back to back, as a resolver's or interceptor's
	// packet buffer would hold them: the query is in cache, the policy is not.
	var all strings.Builder
	for _, q := range qs {
		all.WriteString(q)
	}
	s, off := all.String(), 0
	for i, q := range qs {
		qs[i] = s[off : off+len(q)]
		off += len(q)
	}
	return qs
}

func benchRulesFor(names []string) []Rule {
	rs := make([]Rule, len(names))
	acts := []Action{Block, Block, Block, Block, Block, Block, Warn, Audit, Allowed}
	for i, n := range names {
		rs[i] = Rule{Value: n, Type: TypeDomain, Action: acts[i%len(acts)]}
	}
	return rs
}

// retained returns the heap that build's result keeps alive.
func retained[T any](build func() T) (T, uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return v, after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
}

func BenchmarkMatchName(b *testing.B) {
	d := benchSet()
	b.Logf("rule set: %d names, %s", len(d.names), d.source)
	for _, size := range benchSizes {
		rules := benchRulesFor(d.names[:size.n])
		queries := d.queries[size.n]
		// Both keep a canonical copy of the rules (Policy.Rules()); the
		// index is what is left after subtracting it.
		ruleCopy := uint64(len(rules)) * uint64(unsafe.Sizeof(Rule{}))
		ref, refHeap := retained(func() *refPolicy { return refCompile(rules) })
		p, pHeap := retained(func() *Policy {
			p, err := Compile(rules)
			if err != nil {
				b.Fatal(err)
			}
			return p
		})
		hits := 0
		for _, q := range queries {
			got, want := p.MatchName(q), ref.MatchName(q)
			if got != (Match{want.Action, got.Rule}) || (got.Rule == nil) != (want.Rule == nil) || (got.Rule != nil && got.Rule.Value != want.Rule.Value) {
				b.Fatalf("MatchName(%q) = %+v, reference %+v", q, got, want)
			}
			if got.Rule != nil {
				hits++
			}
		}
		b.Logf("%s: %d of %d queries match (%.0f %%)", size.label, hits, len(queries), 100*float64(hits)/float64(len(queries)))
		var mapNs float64
		b.Run("mapwalk-"+size.label, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ref.MatchName(queries[i&(benchQueries-1)])
				i++
			}
			mapNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(refHeap), "heap-B")
			b.ReportMetric(float64(refHeap-ruleCopy), "index-B")
		})
		b.Run("policy-"+size.label, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.MatchName(queries[i&(benchQueries-1)])
				i++
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(pHeap), "heap-B")
			b.ReportMetric(float64(pHeap-ruleCopy), "index-B")
			if mapNs > 0 {
				b.ReportMetric(mapNs/ns, "x-faster")
			}
			b.ReportMetric(float64(pHeap-ruleCopy)/float64(refHeap-ruleCopy), "index/map")
			b.ReportMetric(float64(pHeap)/float64(refHeap), "heap/map")
		})
		// The same comparison with the two interleaved in chunks of 1024
		// queries, so that load from other processes on a shared machine
		// hits both alike: this ratio is the stable one. One op = one chunk
		// of each.
		b.Run("interleaved-"+size.label, func(b *testing.B) {
			b.ReportAllocs()
			var tp, tm time.Duration
			i := 0
			for b.Loop() {
				t0 := time.Now()
				for k := 0; k < 1024; k++ {
					p.MatchName(queries[(i+k)&(benchQueries-1)])
				}
				t1 := time.Now()
				for k := 0; k < 1024; k++ {
					ref.MatchName(queries[(i+k)&(benchQueries-1)])
				}
				tm += time.Since(t1)
				tp += t1.Sub(t0)
				i += 1024
			}
			n := float64(b.N) * 1024
			b.ReportMetric(float64(tp.Nanoseconds())/n, "policy-ns/name")
			b.ReportMetric(float64(tm.Nanoseconds())/n, "mapwalk-ns/name")
			b.ReportMetric(float64(tm)/float64(tp), "x-faster")
		})
		runtime.KeepAlive(ref)
		runtime.KeepAlive(p)
		runtime.KeepAlive(rules) // else it dies inside the second measurement
	}
}

func BenchmarkCompile(b *testing.B) {
	d := benchSet()
	rules := benchRulesFor(d.names)
	for _, bm := range []struct {
		name    string
		compile func()
	}{
		{"1M", func() {
			if _, err := Compile(rules); err != nil {
				b.Fatal(err)
			}
		}},
		{"mapwalk-1M", func() { refCompile(rules) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bm.compile()
			}
			b.ReportMetric(float64(len(rules))*float64(b.N)/b.Elapsed().Seconds(), "rules/s")
		})
	}
}

func ExamplePolicy_MatchName() {
	p, err := Compile([]Rule{
		{Value: "example.com", Type: TypeDomain, Action: Block, ID: "1"},
		{Value: "ads.example.com", Type: TypeDomain, Action: Allowed, ID: "2"},
	})
	if err != nil {
		panic(err)
	}
	for _, q := range []string{"WWW.Example.com.", "x.ads.example.com", "example.org"} {
		m := p.MatchName(q)
		fmt.Println(q, m.Action)
	}
	// Output:
	// WWW.Example.com. Block
	// x.ads.example.com Allowed
	// example.org None
}
