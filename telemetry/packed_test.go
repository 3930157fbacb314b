package telemetry

import (
	"bytes"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// packedCases are records of every kind the agent emits, and the edges
// that must be kept whole (ext) to come back unchanged.
func packedCases() map[string]Record {
	at := time.Date(2026, 12, 6, 14, 0, 0, 123456789, time.UTC)
	return map[string]Record{
		"flow":          sampleRecord,
		"dns blocked":   {Timestamp: at, DeviceId: "dev-1", DeviceName: "laptop", ActionType: NetworkProtectionBlocked, RemoteUrl: "ads.example", LocalIP: "192.0.2.10", LocalPort: 53124, Protocol: ProtoDNS, Source: SourceDNS, IndicatorId: "hosts.txt:1234", Application: "Ads"},
		"dns answer":    {Timestamp: at, DeviceId: "d", ActionType: DnsQueryResponse, RemoteUrl: "example.com", Protocol: ProtoDNS, Source: SourceDNS, InitiatingProcessId: 4242, InitiatingProcessFileName: "curl", InitiatingProcessAccountName: "alice", RepeatCount: 12, Resolver: "systemd-resolved"},
		"empty":         {},
		"gap":           {Timestamp: at, DeviceId: "d", ActionType: ActionTelemetryGap, LostRecords: 17, GapReason: GapQueueFull},
		"stale set":     {Timestamp: at, DeviceId: "d", ActionType: ActionIndicatorSetStale, PolicySequence: 42, PolicyVersion: "sha256-8dd5", PolicyFreshAt: at.Add(-time.Hour)},
		"device info":   {Timestamp: at, DeviceId: "d", ActionType: DeviceInfo, OSPlatform: "linux", AgentVersion: "1.2.3", IPAddresses: []IPAddress{{Interface: "eth0", Address: "192.0.2.10"}}, LoggedOnUsers: []string{"alice"}},
		"empty slices":  {Timestamp: at, ActionType: DnsQueryResponse, IPAddresses: []IPAddress{}, LoggedOnUsers: []string{}},
		"non-UTC":       {Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)), ActionType: ConnectionSuccess},
		"absurd time":   {Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ActionType: ConnectionSuccess},
		"unknown type":  {Timestamp: at, ActionType: "SomethingNew", Protocol: ProtoTCP},
		"unknown proto": {Timestamp: at, ActionType: ConnectionSuccess, Protocol: "Sctp"},
		"unknown src":   {Timestamp: at, ActionType: ConnectionSuccess, Source: "ebpf"},
		"big pid":       {Timestamp: at, ActionType: ConnectionSuccess, InitiatingProcessId: 1 << 40},
		"negative pid":  {Timestamp: at, ActionType: ConnectionSuccess, InitiatingProcessId: -1},
		"big port":      {Timestamp: at, ActionType: ConnectionSuccess, RemotePort: 70000},
		"negative port": {Timestamp: at, ActionType: ConnectionSuccess, LocalPort: -5},
		"max values":    {Timestamp: at, ActionType: ConnectionFailed, RemotePort: 65535, LocalPort: 65535, InitiatingProcessId: 1<<31 - 1, BytesSent: -1, BytesReceived: 1 << 62, RepeatCount: -3},
	}
}

// Pack then Record gives back the record field for field, and the encoded
// line byte for byte (CONTRACT §6: queueing packed changes nothing on the
// wire), for every kind of record and every edge kept whole.
func TestPackedRoundTrip(t *testing.T) {
	for name, r := range packedCases() {
		t.Run(name, func(t *testing.T) {
			p := Pack(&r)
			back := p.Record()
			if !reflect.DeepEqual(back, r) {
				t.Fatalf("round trip\n%+v\nwant\n%+v", back, r)
			}
			if back.Timestamp.Location() != r.Timestamp.Location() {
				t.Errorf("Timestamp location %v, want %v", back.Timestamp.Location(), r.Timestamp.Location())
			}
			if got, want := AppendJSON(nil, &back), AppendJSON(nil, &r); !bytes.Equal(got, want) {
				t.Errorf("encoded\n%s\nwant\n%s", got, want)
			}
			if !p.Timestamp().Equal(r.Timestamp) {
				t.Errorf("Timestamp() = %v, want %v", p.Timestamp(), r.Timestamp)
			}
		})
	}
}

// A transaction's record (DNS, flow) is packed inline: no allocation, no
// whole copy; the rare kinds are kept whole.
func TestPackedTransactionsInline(t *testing.T) {
	cases := packedCases()
	for _, name := range []string{"flow", "dns blocked", "dns answer", "empty", "max values", "negative pid"} {
		r := cases[name]
		if p := Pack(&r); p.ext != nil {
			t.Errorf("%s: kept whole, want packed inline", name)
		}
		if n := testing.AllocsPerRun(100, func() { _ = Pack(&r) }); n != 0 {
			t.Errorf("%s: Pack allocates %v times, want 0", name, n)
		}
	}
	for _, name := range []string{"gap", "stale set", "device info", "empty slices", "unknown type", "unknown proto", "unknown src", "big pid", "big port", "negative port"} {
		r := cases[name]
		if p := Pack(&r); p.ext == nil {
			t.Errorf("%s: packed inline, want kept whole", name)
		}
	}
}

// A packed record is at most 232 bytes, about half a Record (448): what the
// queue, the writer's batch, the carry and the events ring hold per record.
func TestPackedSize(t *testing.T) {
	packed, whole := unsafe.Sizeof(Packed{}), unsafe.Sizeof(Record{})
	if packed > 232 || packed*100 > whole*52 {
		t.Errorf("Packed is %d bytes (Record %d); want at most 232, about half a Record", packed, whole)
	}
}

// The default queue full of DNS records holds under 2 MB (8,192 × 232
// bytes; it was 3.9 MB of Records): measured on the heap, not computed.
func TestQueueBytesAtBound(t *testing.T) {
	p, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := packedCases()["dns blocked"] // its strings are shared by every copy
	before := liveHeapBytes()
	for range defaultQueueRecords {
		if !p.Add(r) {
			t.Fatal("Add refused a record below the bound")
		}
	}
	grew := liveHeapBytes() - before
	p.mu.Lock()
	n := len(p.queue)
	p.mu.Unlock()
	if n != defaultQueueRecords {
		t.Fatalf("queue holds %d records, want %d", n, defaultQueueRecords)
	}
	if limit := int64(defaultQueueRecords) * 240; grew > limit {
		t.Errorf("the queue at its bound grew the live heap by %d bytes, want at most %d", grew, limit)
	}
	runtime.KeepAlive(p)
}

func liveHeapBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// A drained record goes into the closing chunk as it is handed over: the
// pipeline does not collect the producer's window before writing it.
func TestDrainWritesAsHandedOver(t *testing.T) {
	clk := newClock()
	const n = 50
	var seen []int64
	var pipe *Pipeline
	calls := 0
	drain := func(add func(Record)) {
		if calls++; calls > 1 { // the stop's drain: an empty window
			return
		}
		for i := range n {
			add(answer("n" + strings.Repeat("x", i%7) + ".example"))
			seen = append(seen, pipe.open.records) // the writer's goroutine: no race
		}
	}
	p, stop := startPipeline(t, Config{Dir: t.TempDir(), Now: clk.Now, ChunkRecords: 1000, ChunkInterval: time.Hour, Drain: drain})
	pipe = p
	p.Add(rec(0))
	flush(t, p)
	clk.Add(time.Hour)
	flush(t, p) // closes by age, draining
	stop()
	if len(seen) < n {
		t.Fatalf("Drain handed over %d records, want at least %d", len(seen), n)
	}
	for i := range n {
		if seen[i] != int64(i+2) { // rec(0), then one more per drained record
			t.Fatalf("after drained record %d the open chunk held %d records, want %d (written as handed over)", i, seen[i], i+2)
		}
	}
}

func FuzzPackedRoundTrip(f *testing.F) {
	f.Add(int64(1), int64(5), "Dns", "dns", DnsQueryResponse, "example.com", 4242, 53, int64(3))
	f.Add(int64(-1<<40), int64(0), "", "", "", "", -1, 70000, int64(0))
	f.Fuzz(func(t *testing.T, sec, nsec int64, proto, src, action, url string, pid, port int, n int64) {
		r := Record{Timestamp: time.Unix(sec, nsec), DeviceId: url, ActionType: action, RemoteUrl: url, Protocol: proto, Source: src,
			InitiatingProcessId: pid, RemotePort: port, LocalPort: port / 3, BytesSent: n, RepeatCount: -n, LostRecords: n % 2}
		p := Pack(&r)
		back := p.Record()
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip\n%+v\nwant\n%+v", back, r)
		}
		if got, want := AppendJSON(nil, &back), AppendJSON(nil, &r); !bytes.Equal(got, want) {
			t.Fatalf("encoded %s, want %s", got, want)
		}
	})
}

// TestPackedKeepsEveryField sets each field of Record in turn, by
// reflection, on a transaction's record: a field added to Record later
// that Pack neither keeps inline nor sends to the whole-record path would
// be dropped from every queued record, and fails here.
func TestPackedKeepsEveryField(t *testing.T) {
	base := Record{Timestamp: time.Date(2026, 12, 6, 16, 0, 0, 0, time.UTC), DeviceId: "d", DeviceName: "n",
		ActionType: DnsQueryResponse, RemoteUrl: "example.com", Protocol: ProtoDNS, Source: SourceDNS}
	rt := reflect.TypeOf(base)
	for i := range rt.NumField() {
		r := base
		f := reflect.ValueOf(&r).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("zz-" + rt.Field(i).Name)
		case reflect.Int, reflect.Int64, reflect.Int32:
			f.SetInt(7)
		case reflect.Uint64, reflect.Uint32:
			f.SetUint(7)
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("field %s: add its kind to this test", rt.Field(i).Name)
			}
			f.Set(reflect.ValueOf(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)))
		default:
			t.Fatalf("field %s of kind %s: add its kind to this test", rt.Field(i).Name, f.Kind())
		}
		p := Pack(&r)
		if back := p.Record(); !reflect.DeepEqual(back, r) {
			t.Errorf("field %s lost in Pack: got %+v, want %+v", rt.Field(i).Name, back, r)
		}
	}
}
