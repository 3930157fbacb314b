package dnsproxy

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
