package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/telemetry"
)

// `netward events` shows a machine record with the resolved device id, and
// a deduplicated DNS answer with its repeats and stub resolver.
func TestEventLineDiscovery(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	info := eventLine(telemetry.Record{Timestamp: at, DeviceId: "6f1c0a2e9b7d4c3e8a5f0b1c2d3e4f5a", DeviceName: "pc-7", ActionType: telemetry.DeviceInfo,
		OSPlatform: "linux", OSVersion: "Debian 12", AgentVersion: "1.2.3", PolicySequence: 4,
		IPAddresses: []telemetry.IPAddress{{Interface: "eth0", Address: "192.0.2.10"}}, LoggedOnUsers: []string{"alice", "bob"}})
	for _, want := range []string{"DeviceInfo", "device 6f1c0a2e9b7d4c3e8a5f0b1c2d3e4f5a (pc-7)", "users [alice bob]", "eth0=192.0.2.10", "policy 4"} {
		if !strings.Contains(info, want) {
			t.Errorf("machine record line %q lacks %q", info, want)
		}
	}
	ans := eventLine(telemetry.Record{Timestamp: at, ActionType: telemetry.DnsQueryResponse, Source: "dns", RemoteUrl: "example.com",
		RepeatCount: 12, Resolver: "systemd-resolved", InitiatingProcessFileName: "systemd-resolved"})
	if !strings.Contains(ans, "repeats=12") || !strings.Contains(ans, "via=systemd-resolved") {
		t.Errorf("answer line %q", ans)
	}
}
