package hostnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDNSCaptureConfig(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tt := range []struct {
		name string
		cfg  DNSCaptureConfig
		want string // error substring, "" for ok
	}{
		{"v4 and v6", DNSCaptureConfig{Target4: ap("127.0.0.153:53"), Target6: ap("[::1]:53")}, ""},
		{"v4 only", DNSCaptureConfig{Target4: ap("127.0.0.153:53")}, ""},
		{"none", DNSCaptureConfig{}, "no proxy address"},
		{"not loopback", DNSCaptureConfig{Target4: ap("192.0.2.1:53")}, "loopback"},
		{"v6 in v4 slot", DNSCaptureConfig{Target4: ap("[::1]:53")}, "IPv4 loopback"},
		{"systemd stub", DNSCaptureConfig{Target4: ap("127.0.0.53:53")}, "systemd-resolved"},
		{"mdns port", DNSCaptureConfig{Target4: ap("127.0.0.153:5353")}, "mDNS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.withDefaults()
			if tt.want == "" {
				if err != nil || c.Mark != AgentMark {
					t.Errorf("withDefaults = %v (mark %#x), want ok with AgentMark", err, c.Mark)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("withDefaults = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestNetwardTables(t *testing.T) {
	for name, want := range map[string]bool{"netward_dns": true, "netward_inspect": true, "filter": false, "netward": false} {
		if got := isNetwardTable(name); got != want {
			t.Errorf("isNetwardTable(%q) = %v, want %v", name, got, want)
		}
	}
}
