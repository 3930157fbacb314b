package filter

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// rulesOf builds rules from "action value" pairs; each rule's ID is its index.
func rulesOf(t Type, specs ...string) []Rule {
	var rs []Rule
	for _, s := range specs {
		a, v, _ := strings.Cut(s, " ")
		act, err := ParseAction(a)
		if err != nil {
			panic(err)
		}
		rs = append(rs, Rule{Value: v, Type: t, Action: act})
	}
	for i := range rs {
		rs[i].ID = strconv.Itoa(i)
	}
	return rs
}

func mustCompile(t testing.TB, rs []Rule) *Policy {
	t.Helper()
	p, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// want is "Action id" or "" for no match.
func describe(m Match) string {
	if m.Rule == nil {
		if m.Action != 0 {
			return fmt.Sprintf("BROKEN action %v without rule", m.Action)
		}
		return ""
	}
	if m.Action != m.Rule.Action {
		return fmt.Sprintf("BROKEN action %v for rule action %v", m.Action, m.Rule.Action)
	}
	return m.Action.String() + " " + m.Rule.ID
}

func TestMatchNamePrecedence(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		query map[string]string // query -> want
	}{
		{"child overrides parent", []string{"Block example.com", "Allowed ads.example.com"}, map[string]string{
			"example.com": "Block 0", "www.example.com": "Block 0", "ads.example.com": "Allowed 1",
			"x.y.ads.example.com": "Allowed 1", "badexample.com": "", "com": "", "example.org": "",
			"xads.example.com": "Block 0", "ads.example.com.evil.net": "",
		}},
		{"parent allowed child blocked", []string{"Allowed example.com", "Block bad.example.com"}, map[string]string{
			"bad.example.com": "Block 1", "good.example.com": "Allowed 0", "a.bad.example.com": "Block 1",
		}},
		{"three levels", []string{"Audit com", "Warn example.com", "Block a.b.example.com"}, map[string]string{
			"x.com": "Audit 0", "b.example.com": "Warn 1", "a.b.example.com": "Block 2", "z.a.b.example.com": "Block 2",
			"a.example.com": "Warn 1", "net": "",
		}},
		{"tie Allowed beats Warn", []string{"Warn t.example", "Allowed t.example"}, map[string]string{"t.example": "Allowed 1", "x.t.example": "Allowed 1"}},
		{"tie Warn beats Block", []string{"Warn t.example", "Block t.example"}, map[string]string{"t.example": "Warn 0"}},
		{"tie Block beats Audit", []string{"Audit t.example", "Block t.example"}, map[string]string{"t.example": "Block 1"}},
		{"tie Warn beats Audit", []string{"Audit t.example", "Warn t.example"}, map[string]string{"t.example": "Warn 1"}},
		{"tie Allowed beats Block", []string{"Allowed t.example", "Block t.example"}, map[string]string{"t.example": "Allowed 0"}},
		{"tie Allowed beats Audit", []string{"Audit t.example", "Allowed t.example"}, map[string]string{"t.example": "Allowed 1"}},
		{"tie of all four", []string{"Block t.example", "Audit t.example", "Allowed t.example", "Warn t.example"}, map[string]string{"t.example": "Allowed 2"}},
		{"tie of all four reversed", []string{"Warn t.example", "Allowed t.example", "Audit t.example", "Block t.example"}, map[string]string{"t.example": "Allowed 1"}},
		{"equal duplicates: first wins", []string{"Block t.example", "Block T.Example.", "Block t.example"}, map[string]string{"t.example": "Block 0"}},
		{"tie after canonicalisation", []string{"Block T.EXAMPLE.", "Warn t.example"}, map[string]string{"t.example": "Warn 1"}},
		{"more specific Audit beats parent Block", []string{"Block example.com", "Audit x.example.com"}, map[string]string{"x.example.com": "Audit 1", "y.example.com": "Block 0"}},
		{"case and trailing dot", []string{"Block Example.COM"}, map[string]string{
			"EXAMPLE.COM": "Block 0", "example.com.": "Block 0", "WwW.ExAmPlE.CoM.": "Block 0",
			"example.com..": "", ".": "", "": "", "example.co": "", "xample.com": "",
		}},
		{"IDNA", []string{"Block bücher.example", "Warn xn--mnchen-3ya.example"}, map[string]string{
			"xn--bcher-kva.example": "Block 0", "www.XN--BCHER-KVA.example.": "Block 0", "bücher.example": "Block 0",
			"BÜCHER.example": "Block 0", "shop.bücher.example.": "Block 0", "münchen.example": "Warn 1",
			"bucher.example": "", "bü cher.example": "",
		}},
		{"underscores", []string{"Block _dmarc.example.com", "Warn philadelphia_cbslocal.us.intellitxt.com"}, map[string]string{
			"_dmarc.example.com": "Block 0", "_DMARC.Example.com.": "Block 0", "dmarc.example.com": "", "example.com": "",
			"philadelphia_cbslocal.us.intellitxt.com": "Warn 1", "x.philadelphia_cbslocal.us.intellitxt.com": "Warn 1",
		}},
		{"all-digit labels", []string{"Block 12724.xyz", "Warn 112.2o7.net", "Audit 1.2.3.4"}, map[string]string{
			"12724.xyz": "Block 0", "a.12724.xyz": "Block 0", "2724.xyz": "", "logitech.112.2o7.net": "Warn 1",
			"2o7.net": "", "1.2.3.4": "Audit 2", "0.1.2.3.4": "Audit 2", "2.3.4": "",
		}},
		{"labels are compared whole", []string{"Block ab.example", "Block b.example"}, map[string]string{
			"ab.example": "Block 0", "b.example": "Block 1", "cab.example": "", "a.b.example": "Block 1", "x.ab.example": "Block 0",
		}},
		{"odd queries", []string{"Block example.com"}, map[string]string{
			"a..example.com": "Block 0", "a b.example.com": "Block 0", "example.com\x00": "", "\x80.example.com": "",
			strings.Repeat("a.", 200) + "example.com": "Block 0", strings.Repeat("x", 70) + ".example.com": "Block 0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := rulesOf(TypeDomain, tt.rules...)
			p := mustCompile(t, rs)
			ref := refCompile(rs)
			for q, want := range tt.query {
				if got := describe(p.MatchName(q)); got != want {
					t.Errorf("MatchName(%q) = %q, want %q", q, got, want)
				}
				if got := describe(ref.MatchName(q)); got != want {
					t.Errorf("reference MatchName(%q) = %q, want %q", q, got, want)
				}
			}
		})
	}
}

func TestMatchNameDeepest(t *testing.T) {
	// 127 labels is the most a 253-octet name has.
	labels := make([]string, 127)
	for i := range labels {
		labels[i] = string(rune('a' + i%26))
	}
	full := strings.Join(labels, ".")
	if len(full) != 253 {
		t.Fatalf("len = %d", len(full))
	}
	rs := rulesOf(TypeDomain, "Block "+full, "Allowed "+full[2:], "Warn "+full[200:])
	p := mustCompile(t, rs)
	for q, want := range map[string]string{full: "Block 0", full + ".": "Block 0", full[2:]: "Allowed 1", full[4:]: "Warn 2", full[250:]: "", "z." + full: "Block 0"} {
		if got := describe(p.MatchName(q)); got != want {
			t.Errorf("MatchName(%.20q...) = %q, want %q", q, got, want)
		}
	}
}

func TestMatchAddr(t *testing.T) {
	rs := rulesOf(TypeIP,
		"Audit 0.0.0.0/0",               // 0
		"Block 192.0.2.0/24",            // 1
		"Allowed 192.0.2.128/25",        // 2
		"Warn 192.0.2.200",              // 3
		"Block 192.0.2.201/32",          // 4
		"Warn 192.0.2.201",              // 5: tie with 4, Warn wins
		"Audit 192.0.2.202",             // 6
		"Block 192.0.2.202/32",          // 7: tie with 6, Block wins
		"Block ::ffff:198.51.100.0/120", // 8: stored as 198.51.100.0/24
		"Block 2001:db8::/32",           // 9
		"Allowed 2001:db8:1::/48",       // 10
		"Warn 2001:db8:1::1",            // 11
		"Block 2001:db8:1::1/128",       // 12: loses the tie to 11
		"Block fe80::/10",               // 13
		"Block 203.0.113.7/24",          // 14: masked to 203.0.113.0/24
		"Allowed 203.0.113.0/24",        // 15: tie with 14 after masking
	)
	p := mustCompile(t, rs)
	ref := refCompile(rs)
	for q, want := range map[string]string{
		"192.0.2.1": "Block 1", "192.0.2.127": "Block 1", "192.0.2.128": "Allowed 2", "192.0.2.200": "Warn 3",
		"192.0.2.201": "Warn 5", "192.0.2.202": "Block 7", "192.0.2.255": "Allowed 2", "10.1.2.3": "Audit 0",
		"::ffff:192.0.2.129": "Allowed 2", "::ffff:192.0.2.200": "Warn 3", "198.51.100.9": "Block 8",
		"::ffff:198.51.100.9": "Block 8", "2001:db8::1": "Block 9", "2001:db8:1::2": "Allowed 10",
		"2001:db8:1::1": "Warn 11", "2001:db9::1": "", "::1": "", "fe80::1%eth0": "Block 13",
		"203.0.113.9": "Allowed 15", "0.0.0.0": "Audit 0",
	} {
		a := netip.MustParseAddr(q)
		if got := describe(p.MatchAddr(a)); got != want {
			t.Errorf("MatchAddr(%s) = %q, want %q", q, got, want)
		}
		if got := describe(ref.MatchAddr(a)); got != want {
			t.Errorf("reference MatchAddr(%s) = %q, want %q", q, got, want)
		}
	}
	if got := describe(p.MatchAddr(netip.Addr{})); got != "" {
		t.Errorf("MatchAddr(zero) = %q", got)
	}
	if got := p.Rules()[14].Value; got != "203.0.113.0/24" {
		t.Errorf("canonical prefix = %q", got)
	}
}

func TestMatchURL(t *testing.T) {
	rs := rulesOf(TypeURL,
		"Block http://example.com/ads",           // 0
		"Allowed example.com/ads/ok",             // 1
		"Warn https://www.example.com/",          // 2
		"Audit example.com/ads",                  // 3: tie with 0, Block wins
		"Allowed example.com/Ads",                // 4: paths are case-sensitive
		"Warn HTTP://Shop.Example.com:8080/cart", // 5: port and case dropped from the host
		"Block bücher.example/x",                 // 6
	)
	p := mustCompile(t, rs)
	ref := refCompile(rs)
	for q, want := range map[[2]string]string{
		{"example.com", "/ads/x"}: "Block 0", {"example.com", "/ads"}: "Block 0", {"example.com", "/ads/ok/1"}: "Allowed 1",
		{"example.com", "/other"}: "", {"example.com", ""}: "", {"example.com", "/Ads"}: "Allowed 4",
		{"www.example.com", "/ads"}: "Warn 2", {"www.example.com", ""}: "Warn 2", {"a.example.com", "/ads"}: "Block 0",
		{"EXAMPLE.com.", "/adsl"}: "Block 0", {"shop.example.com", "/cart?x=1"}: "Warn 5", {"shop.example.com", "/ads"}: "Block 0",
		{"xn--bcher-kva.example", "/x/y"}: "Block 6", {"bücher.example", "/x"}: "Block 6", {"example.org", "/"}: "",
	} {
		if got := describe(p.MatchURL(q[0], q[1])); got != want {
			t.Errorf("MatchURL(%q, %q) = %q, want %q", q[0], q[1], got, want)
		}
		if got := describe(ref.MatchURL(q[0], q[1])); got != want {
			t.Errorf("reference MatchURL(%q, %q) = %q, want %q", q[0], q[1], got, want)
		}
	}
	if got := p.Rules()[5].Value; got != "shop.example.com/cart" {
		t.Errorf("canonical URL = %q", got)
	}
}

func TestCompileErrors(t *testing.T) {
	rs := []Rule{
		{Value: "ok.example", Type: TypeDomain, Action: Block},                        // 0
		{Value: "a..example", Type: TypeDomain, Action: Block},                        // 1
		{Value: "noaction.example", Type: TypeDomain},                                 // 2
		{Value: strings.Repeat("a", 64) + ".example", Type: TypeDomain, Action: Warn}, // 3
		{Value: strings.Repeat("abc.", 63) + "ab", Type: TypeDomain, Action: Warn},    // 4: 254 octets
		{Value: "exa mple.com", Type: TypeDomain, Action: Audit},                      // 5
		{Value: "192.0.2.300", Type: TypeIP, Action: Block},                           // 6
		{Value: "fe80::1%eth0", Type: TypeIP, Action: Block},                          // 7
		{Value: "example.com/x?y=1", Type: TypeURL, Action: Block},                    // 8
		{Value: "ftp://example.com/", Type: TypeURL, Action: Block},                   // 9
		{Value: "x.example", Type: Type(9), Action: Block},                            // 10
		{Value: "192.0.2.0/24", Type: TypeIP, Action: Allowed},                        // 11
		{Value: "x.example", Type: TypeDomain, Action: Action(9)},                     // 12
		{Value: "", Type: TypeDomain, Action: Block},                                  // 13
	}
	_, err := Compile(rs)
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("Compile error = %v, want *CompileError", err)
	}
	var got []int
	for _, re := range ce.Rules {
		got = append(got, re.Index)
		if re.Value != rs[re.Index].Value {
			t.Errorf("rule %d: Value %q, want the input %q", re.Index, re.Value, rs[re.Index].Value)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("rule %d (", re.Index)) {
			t.Errorf("message does not name rule %d: %v", re.Index, err)
		}
	}
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("invalid rules = %v, want %v", got, want)
	}
	for _, i := range []int{1, 3, 4, 5, 13} {
		if !errors.Is(ce.Rules[slicesIndex(got, i)], ErrInvalidName) {
			t.Errorf("rule %d error %v does not wrap ErrInvalidName", i, ce.Rules[slicesIndex(got, i)])
		}
	}
}

func slicesIndex(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestRulesAndLen(t *testing.T) {
	in := []Rule{
		{Value: "WWW.Example.COM.", Type: TypeDomain, Action: Block, ID: "a", Meta: &RuleMeta{Title: "t"}},
		{Value: "::ffff:192.0.2.1", Type: TypeIP, Action: Warn, ID: "b"},
		{Value: "https://Example.com", Type: TypeURL, Action: Audit, ID: "c"},
	}
	p := mustCompile(t, in)
	if p.Len() != 3 {
		t.Errorf("Len = %d", p.Len())
	}
	var got []string
	for _, r := range p.Rules() {
		got = append(got, r.Value+"|"+r.ID)
	}
	if want := "[www.example.com|a 192.0.2.1/32|b example.com/|c]"; fmt.Sprint(got) != want {
		t.Errorf("Rules = %v, want %s", got, want)
	}
	if in[0].Value != "WWW.Example.COM." {
		t.Errorf("Compile modified its input: %q", in[0].Value)
	}
	if m := p.MatchName("www.example.com"); m.Rule != &p.Rules()[0] || m.Rule.Title() != "t" {
		t.Errorf("Match.Rule does not point into Rules(): %+v", m)
	}
	empty := mustCompile(t, nil)
	if m := empty.MatchName("example.com"); m.Rule != nil {
		t.Errorf("empty policy matched %+v", m)
	}
	if m := empty.MatchAddr(netip.MustParseAddr("192.0.2.1")); m.Rule != nil {
		t.Errorf("empty policy matched %+v", m)
	}
	if m := empty.MatchURL("example.com", "/"); m.Rule != nil {
		t.Errorf("empty policy matched %+v", m)
	}
}

// readSample returns the StevenBlack excerpt in testdata.
func readSample(t testing.TB) []string {
	f, err := os.Open("testdata/stevenblack-sample.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" && !strings.HasPrefix(s, "#") {
			names = append(names, s)
		}
	}
	return names
}

// sampleQueries derives hits at several depths, near misses and misses from names.
func sampleQueries(names []string, r *rand.Rand) []string {
	var qs []string
	for _, n := range names {
		qs = append(qs, n, "www."+n, "a.b."+strings.ToUpper(n)+".", "x"+n, n[strings.IndexByte(n, '.')+1:])
		if i := strings.IndexByte(n, '.'); i > 0 {
			qs = append(qs, n[:i]+"-not"+n[i:])
		}
		qs = append(qs, names[r.IntN(len(names))]+"."+names[r.IntN(len(names))])
	}
	return qs
}

// TestFingerprintCollisions masks the sorted half of the suffix hashes down
// to a few bits (or none), so that a level is one long run of equal
// fingerprints that probes must scan and tell apart by the other half, and
// checks the answers against the reference.
func TestFingerprintCollisions(t *testing.T) {
	names := readSample(t)
	r := rand.New(rand.NewPCG(1, 2))
	acts := []Action{Audit, Block, Warn, Allowed}
	var rs []Rule
	for i, n := range names {
		rs = append(rs, Rule{Value: n, Type: TypeDomain, Action: acts[r.IntN(4)], ID: strconv.Itoa(i)})
		if i%7 == 0 { // parents and duplicates
			rs = append(rs, Rule{Value: n[strings.IndexByte(n, '.')+1:], Type: TypeDomain, Action: acts[r.IntN(4)], ID: "p" + strconv.Itoa(i)})
		}
	}
	ref := refCompile(rs)
	qs := sampleQueries(names, r)
	for _, mask := range []uint32{0, 1, 0xff, ^uint32(0)} {
		p, err := compile(rs, mask, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if got, want := describe(p.MatchName(q)), describe(ref.MatchName(q)); got != want {
				t.Fatalf("mask %#x: MatchName(%q) = %q, reference %q", mask, q, got, want)
			}
		}
	}
}

// TestConcurrentReaders runs lookups from several goroutines (meaningful
// under -race: a Policy must be safe for concurrent readers).
func TestConcurrentReaders(t *testing.T) {
	names := readSample(t)
	rs := make([]Rule, len(names))
	for i, n := range names {
		rs[i] = Rule{Value: n, Type: TypeDomain, Action: Block, ID: strconv.Itoa(i)}
	}
	rs = append(rs, Rule{Value: "192.0.2.0/24", Type: TypeIP, Action: Warn}, Rule{Value: names[0] + "/x", Type: TypeURL, Action: Warn})
	p := mustCompile(t, rs)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, n := range names {
				if m := p.MatchName("www." + n); m.Action != Block {
					t.Errorf("MatchName(www.%s) = %v", n, m.Action)
					return
				}
				if m := p.MatchAddr(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})); m.Action != Warn {
					t.Errorf("MatchAddr = %v", m.Action)
					return
				}
				p.MatchURL(n, "/x")
			}
		}()
	}
	wg.Wait()
}

func TestLookupsDoNotAllocate(t *testing.T) {
	names := readSample(t)
	var rs []Rule
	for _, n := range names {
		rs = append(rs, Rule{Value: n, Type: TypeDomain, Action: Block})
	}
	rs = append(rs,
		Rule{Value: "192.0.2.0/24", Type: TypeIP, Action: Block}, Rule{Value: "2001:db8::/32", Type: TypeIP, Action: Block},
		Rule{Value: "example.com/ads", Type: TypeURL, Action: Block}, Rule{Value: "www.example.com/", Type: TypeURL, Action: Warn})
	p := mustCompile(t, rs)
	for _, q := range []string{names[3], "WWW." + strings.ToUpper(names[7]) + ".", "a.b.c.example.org", "nothing", "", "."} {
		if n := testing.AllocsPerRun(100, func() { p.MatchName(q) }); n != 0 {
			t.Errorf("MatchName(%q): %v allocations", q, n)
		}
	}
	for _, q := range []string{"192.0.2.7", "::ffff:192.0.2.7", "2001:db8::1", "198.51.100.1", "fe80::1%eth0"} {
		a := netip.MustParseAddr(q)
		if n := testing.AllocsPerRun(100, func() { p.MatchAddr(a) }); n != 0 {
			t.Errorf("MatchAddr(%s): %v allocations", q, n)
		}
	}
	for _, q := range [][2]string{{"example.com", "/ads/1"}, {"WWW.example.com.", "/"}, {"x.y.example.com", "/ads"}, {"example.net", ""}} {
		if n := testing.AllocsPerRun(100, func() { p.MatchURL(q[0], q[1]) }); n != 0 {
			t.Errorf("MatchURL(%q, %q): %v allocations", q[0], q[1], n)
		}
	}
}

// fuzzLabels is a small label alphabet so that random rule sets nest, tie
// and collide often.
var fuzzLabels = []string{"a", "b", "ab", "com", "example", "_dmarc", "0", "123", "xn--bcher-kva", "bücher", "www", "A", "x-y"}

// FuzzPolicyDifferential compiles a random rule set (drawn from seed, plus
// the fuzzer's own rule and query strings) and checks every answer against
// refPolicy, with real and with colliding fingerprints.
func FuzzPolicyDifferential(f *testing.F) {
	f.Add(uint64(1), "example.com", "www.example.com")
	f.Add(uint64(2), "a.b", "A.B.")
	f.Add(uint64(3), "bücher.example", "xn--bcher-kva.example")
	f.Add(uint64(4), "_dmarc.example.com", "_DMARC.example.com.")
	f.Add(uint64(5), "192.0.2.0/25", "192.0.2.1")
	f.Add(uint64(6), "example.com/a", "example.com/ab")
	f.Add(uint64(7), "a..b", "a..b")
	for i, n := range readSample(f)[:20] {
		f.Add(uint64(100+i), n, "www."+n)
	}
	acts := []Action{Audit, Block, Warn, Allowed}
	f.Fuzz(func(t *testing.T, seed uint64, extra, query string) {
		r := rand.New(rand.NewPCG(seed, seed>>1^0x5eed))
		name := func() string {
			n := 1 + r.IntN(4)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = fuzzLabels[r.IntN(len(fuzzLabels))]
			}
			return strings.Join(parts, ".")
		}
		addr := func() netip.Addr {
			if r.IntN(3) == 0 {
				return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(4))})
			}
			return netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(256))})
		}
		paths := []string{"/", "/a", "/ab", "/a/b", "/A", ""}
		var rs []Rule
		for i, n := 0, r.IntN(40); i < n; i++ {
			rule := Rule{Action: acts[r.IntN(4)], ID: strconv.Itoa(i)}
			switch r.IntN(5) {
			case 0:
				a := addr()
				rule.Type, rule.Value = TypeIP, netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).String()
				if r.IntN(4) == 0 && a.Is4() {
					rule.Value = netip.PrefixFrom(netip.AddrFrom16(a.As16()), 96+r.IntN(33)).String()
				}
			case 1:
				rule.Type, rule.Value = TypeURL, name()+paths[r.IntN(len(paths))]
			default:
				rule.Type, rule.Value = TypeDomain, name()
			}
			rs = append(rs, rule)
		}
		for _, ty := range []Type{TypeDomain, TypeURL, TypeIP} {
			rs = append(rs, Rule{Value: extra, Type: ty, Action: acts[len(extra)%4], ID: "extra"})
		}
		// Keep only valid rules: this test is about matching.
		valid := rs[:0]
		for _, rule := range rs {
			if _, err := Compile([]Rule{rule}); err == nil {
				valid = append(valid, rule)
			}
		}
		rs = valid
		ref := refCompile(rs)
		names := []string{query, query + ".", strings.ToUpper(query)}
		for i := 0; i < 30; i++ {
			q := name()
			if r.IntN(3) == 0 {
				q = strings.ToUpper(q)
			}
			if r.IntN(2) == 0 {
				q += "."
			}
			names = append(names, q)
		}
		addrs := []netip.Addr{}
		if a, err := netip.ParseAddr(query); err == nil {
			addrs = append(addrs, a)
		}
		for i := 0; i < 20; i++ {
			a := addr()
			addrs = append(addrs, a)
			if a.Is4() {
				addrs = append(addrs, netip.AddrFrom16(a.As16()))
			}
		}
		for _, mask := range []uint32{^uint32(0), 1} {
			p, err := compile(rs, mask, false)
			if err != nil {
				t.Fatalf("Compile of valid rules: %v", err)
			}
			for _, q := range names {
				if got, want := describe(p.MatchName(q)), describe(ref.MatchName(q)); got != want {
					t.Fatalf("mask %#x: MatchName(%q) = %q, reference %q (rules %v)", mask, q, got, want, rs)
				}
				for _, path := range paths {
					if got, want := describe(p.MatchURL(q, path)), describe(ref.MatchURL(q, path)); got != want {
						t.Fatalf("mask %#x: MatchURL(%q, %q) = %q, reference %q (rules %v)", mask, q, path, got, want, rs)
					}
				}
			}
			for _, a := range addrs {
				if got, want := describe(p.MatchAddr(a)), describe(ref.MatchAddr(a)); got != want {
					t.Fatalf("MatchAddr(%s) = %q, reference %q (rules %v)", a, got, want, rs)
				}
			}
		}
	})
}

func TestCompileOwnedMatchesCompile(t *testing.T) {
	rules := []Rule{
		{Value: "Example.COM", Type: TypeDomain, Action: Block, ID: "1"},
		{Value: "ok.example.com", Type: TypeDomain, Action: Allowed, ID: "2"},
		{Value: "192.0.2.0/24", Type: TypeIP, Action: Warn, ID: "3"},
	}
	copied, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	if rules[0].Value != "Example.COM" {
		t.Fatalf("Compile changed the caller's rules: %q", rules[0].Value)
	}
	owned, err := CompileOwned(slices.Clone(rules))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"www.example.com", "ok.example.com", "example.org"} {
		a, b := copied.MatchName(name), owned.MatchName(name)
		if a.Action != b.Action || (a.Rule == nil) != (b.Rule == nil) || a.Rule != nil && a.Rule.ID != b.Rule.ID {
			t.Errorf("%s: Compile %v, CompileOwned %v", name, a, b)
		}
	}
	if a, b := copied.MatchAddr(netip.MustParseAddr("192.0.2.7")), owned.MatchAddr(netip.MustParseAddr("192.0.2.7")); a.Action != Warn || b.Action != Warn {
		t.Errorf("192.0.2.7: %v / %v", a.Action, b.Action)
	}
	if _, err := CompileOwned([]Rule{{Value: "a..b", Type: TypeDomain, Action: Block}}); err == nil {
		t.Error("CompileOwned accepted an invalid rule")
	}
}
