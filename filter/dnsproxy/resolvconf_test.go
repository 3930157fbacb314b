package dnsproxy

import (
	"net/netip"
	"os"
	"time"

	"github.com/miekg/dns"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/netward/netward/internal/e2e"
)

func TestParseResolvConf(t *testing.T) {
	in := "# comment\nnameserver 192.0.2.1\nnameserver 2001:db8::53\nnameserver not-an-ip\nsearch example\noptions edns0\nnameserver fe80::1%eth0\n"
	got := parseResolvConf([]byte(in))
	want := []string{"192.0.2.1:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseResolvConf = %q, want %q", got, want)
	}
}

func TestHostUpstreamsDropsSelf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 127.0.0.153\nnameserver 192.0.2.1\nnameserver 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := hostUpstreams(p, []string{"127.0.0.153:53"})
	if err != nil || !reflect.DeepEqual(got, []string{"192.0.2.1:53"}) {
		t.Errorf("hostUpstreams = %q, %v; want only 192.0.2.1:53 (no loop to the proxy, no duplicate)", got, err)
	}
	if err := os.WriteFile(p, []byte("nameserver 127.0.0.153\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hostUpstreams(p, []string{"127.0.0.153:53"}); err == nil {
		t.Errorf("only the proxy itself: want an error telling to set dns.upstreams")
	}
}

// TestHostResolversWatched: the proxy starts with no usable resolver
// (allowed names get SERVFAIL, blocked ones are still answered), then the
// host's resolv.conf gains one and the proxy uses it without a restart.
func TestHostResolversWatched(t *testing.T) {
	// resolv.conf names servers on port 53: the test upstream must sit there.
	e2e.Require(t) // port 53 needs root
	up := newTestUpstreamAt(t, "127.0.0.77:53", testRecords...)
	if up == nil {
		t.Fatal("cannot bind 127.0.0.77:53")
	}
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("# no resolver yet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, ResolvConf: rc, Decider: newDecider(t, testRules()...)})
	if err != nil {
		t.Fatal(err)
	}
	p.resolverEvery = 20 * time.Millisecond
	addr := runProxy(t, p)
	if r := query(t, addr, "udp", "allowed.example", dns.TypeA, false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("without resolvers: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, addr, "udp", "bad.example", dns.TypeA, false); r.Rcode != dns.RcodeNameError {
		t.Fatalf("blocked without resolvers: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.77\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, "the new resolver in the upstream set", 20*time.Second,
		func() bool { return slices.Equal(p.Stats().Upstreams, []string{"127.0.0.77:53"}) })
	if r := query(t, addr, "udp", "allowed.example", dns.TypeA, false); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("with the new resolver: %s, want an answer", dns.RcodeToString[r.Rcode])
	}
}

func TestSiteLocalDefault(t *testing.T) {
	for a, want := range map[string]bool{"fec0:0:0:ffff::1": true, "fec0:0:0:ffff::3": true, "2001:db8::1": false, "192.0.2.1": false} {
		if got := isSiteLocalDefault(netip.MustParseAddr(a)); got != want {
			t.Errorf("isSiteLocalDefault(%s) = %v, want %v", a, got, want)
		}
	}
}
