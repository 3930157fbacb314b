package telemetry

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

var sampleRecord = Record{
	Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC), DeviceId: "dev-1", DeviceName: "laptop-7",
	ActionType: ConnectionSuccess, RemoteIP: "203.0.113.7", RemotePort: 443, RemoteUrl: "dropbox.com",
	LocalIP: "192.0.2.10", LocalPort: 50123, Protocol: ProtoTCP, BytesSent: 123456, BytesReceived: 7890123,
	InitiatingProcessId: 4242, InitiatingProcessFileName: "firefox", InitiatingProcessAccountName: "alice",
	IndicatorId: "7", Application: "Dropbox", Source: SourceConntrack,
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		r    Record
	}{
		{"full", sampleRecord},
		{"minimal", Record{Timestamp: time.Unix(0, 0).UTC(), DeviceId: "d", ActionType: DnsQueryResponse}},
		{"escapes", Record{Timestamp: time.Unix(1, 5).UTC(), DeviceId: "d\"\\\n\t\r\x01\x1f", ActionType: "x", RemoteUrl: "ünïcode.example</script>&"}},
		{"invalid utf8", Record{Timestamp: time.Unix(1, 0).UTC(), DeviceId: "a\xffb\xc3", ActionType: "x"}},
		{"gap", Record{Timestamp: time.Unix(2, 0).UTC(), DeviceId: "d", ActionType: ActionTelemetryGap, LostRecords: 17, GapReason: GapSpoolFull}},
		{"stale set", Record{Timestamp: time.Unix(3, 0).UTC(), DeviceId: "d", ActionType: ActionIndicatorSetStale, PolicySequence: 42, PolicyVersion: "sha256-8dd57a82caa63708", PolicyFreshAt: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}},
		{"dns answer", Record{Timestamp: time.Unix(4, 0).UTC(), DeviceId: "d", ActionType: DnsQueryResponse, RemoteUrl: "example.com", RepeatCount: 12, Resolver: "stub"}},
		{"device info", Record{Timestamp: time.Unix(5, 0).UTC(), DeviceId: "d", DeviceName: "pc", ActionType: DeviceInfo, OSPlatform: "linux", OSVersion: "Debian 12", AgentVersion: "1.2.3", PolicySequence: 7,
			IPAddresses: []IPAddress{{Interface: "eth0", Address: "192.0.2.10", Mac: "02:00:00:00:00:01"}, {Interface: "wg\"0", Address: "2001:db8::1"}}, LoggedOnUsers: []string{"alice", "bob"}}},
		{"non-UTC", Record{Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), DeviceId: "d", ActionType: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendJSON(nil, &tt.r)
			var back Record
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("AppendJSON output %q is not JSON: %v", got, err)
			}
			var want Record
			std, _ := json.Marshal(tt.r)
			if err := json.Unmarshal(std, &want); err != nil {
				t.Fatal(err)
			}
			// CONTRACT §6: timestamps are written in UTC.
			if back.Timestamp.Location() != time.UTC {
				t.Errorf("Timestamp location = %v, want UTC", back.Timestamp.Location())
			}
			want.Timestamp = want.Timestamp.UTC()
			if !reflect.DeepEqual(back, want) || !back.Timestamp.Equal(tt.r.Timestamp) {
				t.Errorf("AppendJSON round trip = %+v, want %+v", back, want)
			}
		})
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], &sampleRecord) }); n != 0 {
		t.Errorf("AppendJSON allocates %v times per record, want 0", n)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("dev", "name", "dropbox.com", "alice", int64(5))
	f.Add("\x00\"\\", "\xff\xfe", "ü", "\u2028", int64(-1))
	f.Fuzz(func(t *testing.T, dev, name, url, user string, n int64) {
		r := Record{Timestamp: time.Unix(n, 0), DeviceId: dev, DeviceName: name, RemoteUrl: url, InitiatingProcessAccountName: user, BytesSent: n}
		b := AppendJSON(nil, &r)
		var back Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		var want Record
		std, _ := json.Marshal(r)
		_ = json.Unmarshal(std, &want)
		if back.DeviceId != want.DeviceId || back.DeviceName != want.DeviceName || back.RemoteUrl != want.RemoteUrl || back.InitiatingProcessAccountName != want.InitiatingProcessAccountName || back.BytesSent != n {
			t.Fatalf("round trip %+v, want %+v", back, want)
		}
	})
}
