package agent

import (
	"slices"
	"testing"

	"github.com/netward/netward/agent/config"
)

func TestProxyPorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		port uint16
		ok   bool
	}{
		{"http://proxy.corp:3128", 3128, true},
		{"proxy.corp:8080", 8080, true},
		{"https://u:p@proxy.corp:443/", 443, true},
		{"http://[2001:db8::8]:8888", 8888, true},
		{"socks5://proxy.corp:1080", 0, false},
		{"http://proxy.corp", 0, false},
		{"", 0, false},
		{"http://proxy.corp:0", 0, false},
	} {
		if p, ok := proxyURLPort(tc.in); p != tc.port || ok != tc.ok {
			t.Errorf("proxyURLPort(%q) = %d, %v; want %d, %v", tc.in, p, ok, tc.port, tc.ok)
		}
	}
	if got := proxyServerPorts("http=proxy:8080;https=proxy:8443;socks=proxy:1080"); !slices.Equal(got, []uint16{8080, 8443}) {
		t.Errorf("proxyServerPorts = %v", got)
	}
	if got := proxyServerPorts("proxy.corp:3128"); !slices.Equal(got, []uint16{3128}) {
		t.Errorf("proxyServerPorts = %v", got)
	}
	env := "PATH=/usr/bin\n# comment\nhttps_proxy=\"http://proxy.corp:3128\"\nexport HTTP_PROXY='proxy.corp:8080'\nno_proxy=localhost\n"
	if got := environmentProxies([]byte(env)); !slices.Equal(got, []string{"http://proxy.corp:3128", "proxy.corp:8080"}) {
		t.Errorf("environmentProxies = %q", got)
	}

	t.Setenv("https_proxy", "http://proxy.corp:9443")
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.SNI.ProxyPorts = []int{3128, 9443}
	a := &Agent{cfg: cfg}
	if got := a.proxyPorts(); !slices.Contains(got, 3128) || !slices.Contains(got, 9443) || len(got) != len(slices.Compact(slices.Clone(got))) {
		t.Errorf("proxyPorts = %v, want 3128 and 9443 once", got)
	}
}
