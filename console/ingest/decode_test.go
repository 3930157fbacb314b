package ingest

import (
	"encoding/json"
	"reflect"
	"testing"
)

var decodeSeeds = []string{
	`{"Timestamp":"2026-12-05T07:00:00Z","DeviceId":"d1","DeviceName":"d1","ActionType":"ConnectionSuccess","RemoteUrl":"www.dropbox.com","RemotePort":443,"LocalPort":51000,"BytesSent":10,"BytesReceived":2000,"InitiatingProcessAccountName":"CORP\\alice"}`,
	`{"Timestamp":"2026-12-05T07:00:00.123456789+02:00","DeviceId":"d1","ActionType":"DnsQueryResponse","RemoteUrl":"ünïcode.example","RepeatCount":3}`,
	`{"timestamp":"2026-12-05T07:00:00Z","DeviceId":"d1","ActionType":"X"}`,
	`{"Timestamp":"2026-12-05T07:00:00Z","DeviceId":"d1","ActionType":"X","NewField":"v","NewNumber":12}`,
	`{"Timestamp":"2026-12-05T07:00:00Z","DeviceId":"d1","ActionType":"X","RemotePort":1.5}`,
	`{"Timestamp":"2026-12-05T07:00:00Z","DeviceId":"d1","ActionType":"X","RemotePort":"443"}`,
	`{"Timestamp":"2026-12-05T07:00:00Z","DeviceId":"d1","DeviceId":"d2","ActionType":"X"}`,
	`{"Timestamp":"2026-13-05T07:00:00Z","DeviceId":"d1","ActionType":"X"}`,
	`{"Timestamp":"2026-12-05T07:00:00Z","DeviceId":"d1","ActionType":"DeviceInfo","IPAddresses":[{"Address":"192.0.2.1"}],"LoggedOnUsers":["a"],"PolicySequence":4}`,
	`{"Timestamp":"2026-12-05T07:00:00Z","DeviceId":null,"ActionType":"X"} trailing`,
	`{"Timestamp":"2026-12-05T07:00:00Z","DeviceId":"d\u0031","ActionType":"X",}`,
	`{"BytesSent":-0,"LocalPort":01}`,
	`{"BytesSent":99999999999999999999}`,
	"{\"RemoteUrl\":\"bad\xff\"}",
	` { } `, `[]`, `{`, `{"a"}`, `{"RemoteUrl":"x" "y"}`,
}

// FuzzDecodeRecord holds the fast path to json.Unmarshal: for any line,
// both accept it with the same record or both refuse it.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var fast, ref record
		errFast := decodeRecord(line, &fast)
		errRef := json.Unmarshal(line, &ref)
		if (errFast == nil) != (errRef == nil) {
			t.Fatalf("%q: decodeRecord err %v, json.Unmarshal err %v", line, errFast, errRef)
		}
		if errRef == nil && !reflect.DeepEqual(fast, ref) {
			t.Fatalf("%q:\nfast %+v\nref  %+v", line, fast, ref)
		}
	})
}

// TestDecodeRecordFastPath: the agent's ordinary records, unknown fields
// included, do not fall back to json.Unmarshal (the point of the fast
// path), and those that must, do.
func TestDecodeRecordFastPath(t *testing.T) {
	for i, want := range map[int]bool{0: true, 1: true, 2: false, 3: true, 4: false, 8: false, 10: false} {
		var r record
		if got := fastDecode([]byte(decodeSeeds[i]), &r); got != want {
			t.Errorf("fastDecode(%s) = %v, want %v", decodeSeeds[i], got, want)
		}
	}
}
