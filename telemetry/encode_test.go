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

// TestPlain8 checks the eight-byte test against the byte loop's rule for
// every byte value at every position, beside plain neighbours.
func TestPlain8(t *testing.T) {
	needs := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= 0x80 }
	for _, fill := range []byte{'a', '!', '~', 0x21, 0x5d, 0x7f} {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var x uint64
				for i := 0; i < 8; i++ {
					b := fill
					if i == pos {
						b = byte(c)
					}
					x |= uint64(b) << (8 * i)
				}
				if got, want := plain8(x), !needs(byte(c)); got != want {
					t.Fatalf("plain8 with %#x at byte %d among %q = %v, want %v", c, pos, fill, got, want)
				}
			}
		}
	}
}

// TestPlain8Pairs: two bytes of any values at any two positions (a borrow
// out of one subtraction could hide or invent the other), the rest plain.
func TestPlain8Pairs(t *testing.T) {
	needs := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= 0x80 }
	for i := 0; i < 8; i++ {
		for j := i + 1; j < 8; j++ {
			for c := 0; c < 256; c++ {
				for d := 0; d < 256; d++ {
					x := uint64(0x6161616161616161) // "aaaaaaaa"
					x &^= 0xff<<(8*i) | 0xff<<(8*j)
					x |= uint64(c)<<(8*i) | uint64(d)<<(8*j)
					if got, want := plain8(x), !needs(byte(c)) && !needs(byte(d)); got != want {
						t.Fatalf("plain8(%#016x) = %v, want %v", x, got, want)
					}
				}
			}
		}
	}
}
