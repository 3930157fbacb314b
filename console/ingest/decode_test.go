package ingest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"
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
		decodesLikeUnmarshal(t, line)
	})
}

// FuzzDecodeRecords: the lines of a chunk decoded as parse does, into one
// record with one interner (whose previous values and escape buffer carry
// over from line to line), each give json.Unmarshal's record or both
// refuse it.
func FuzzDecodeRecords(f *testing.F) {
	f.Add([]byte(strings.Join(decodeSeeds, "\n")))
	f.Add([]byte(`{"DeviceId":"d1","InitiatingProcessAccountName":"CORP\\alice","RemotePort":443}` + "\n" +
		`{"DeviceId":"d1","InitiatingProcessAccountName":"CORP\\bob","LocalIP":"192.0.2.1"}` + "\n" +
		`{"DeviceId":"d12","InitiatingProcessAccountName":"CORP\\alice","RemoteUrl":null}` + "\n" +
		`{"DeviceId":"d1","Deviceid":"d3"}` + "\n" + `{"DeviceId":"d1"}`))
	f.Fuzz(func(t *testing.T, lines []byte) {
		var fast record
		strs := newInterner()
		for _, line := range bytes.Split(lines, []byte("\n")) {
			var ref record
			errFast := decodeRecord(line, &fast, strs)
			errRef := json.Unmarshal(line, &ref)
			if (errFast == nil) != (errRef == nil) {
				t.Fatalf("%q: decodeRecord err %v, json.Unmarshal err %v", line, errFast, errRef)
			}
			if errRef == nil && !reflect.DeepEqual(fast, ref) {
				t.Fatalf("%q:\nfast %+v\nref  %+v", line, fast, ref)
			}
		}
	})
}

// decodesLikeUnmarshal fails t unless decodeRecord and json.Unmarshal both
// accept line with the same record or both refuse it.
func decodesLikeUnmarshal(t *testing.T, line []byte) {
	t.Helper()
	var fast, ref record
	errFast := decodeRecord(line, &fast, newInterner())
	errRef := json.Unmarshal(line, &ref)
	if (errFast == nil) != (errRef == nil) {
		t.Fatalf("%q: decodeRecord err %v, json.Unmarshal err %v", line, errFast, errRef)
	}
	if errRef == nil && !reflect.DeepEqual(fast, ref) {
		t.Fatalf("%q:\nfast %+v\nref  %+v", line, fast, ref)
	}
}

// TestDecodeRecordFastPath: the agent's ordinary records, unknown fields
// included, do not fall back to json.Unmarshal (the point of the fast
// path), and those that must, do.
func TestDecodeRecordFastPath(t *testing.T) {
	for i, want := range map[int]bool{0: true, 1: true, 2: false, 3: true, 4: false, 8: false, 10: false} {
		var r record
		if got := fastDecode([]byte(decodeSeeds[i]), &r, nil); got != want {
			t.Errorf("fastDecode(%s) = %v, want %v", decodeSeeds[i], got, want)
		}
	}
}

// A chunk's repeated values are one string each: decoding the same
// record again allocates none of its strings.
func TestDecodeRecordInterns(t *testing.T) {
	line := []byte(decodeSeeds[0])
	in := newInterner()
	var first record
	if err := decodeRecord(line, &first, in); err != nil {
		t.Fatal(err)
	}
	withoutAllocs := testing.AllocsPerRun(100, func() {
		var r record
		if err := decodeRecord(line, &r, nil); err != nil {
			t.Fatal(err)
		}
	})
	interned := testing.AllocsPerRun(100, func() {
		var r record
		if err := decodeRecord(line, &r, in); err != nil {
			t.Fatal(err)
		}
		if r.RemoteUrl != first.RemoteUrl || unsafe.StringData(r.RemoteUrl) != unsafe.StringData(first.RemoteUrl) {
			t.Fatalf("RemoteUrl %q not the first record's string", r.RemoteUrl)
		}
	})
	// Five string fields in the line.
	if interned > withoutAllocs-5 {
		t.Errorf("decodeRecord allocates %.0f times with the interner, %.0f without; want 5 fewer", interned, withoutAllocs)
	}
}

func TestInternerBounds(t *testing.T) {
	for _, c := range []struct {
		name   string
		in     *interner
		b      []byte
		shared bool
	}{
		{"short value: interned", newInterner(), []byte("www.dropbox.com"), true},
		{"long value: allocated", newInterner(), bytes.Repeat([]byte("a"), internMaxLen+1), false},
		{"nil interner: allocated", nil, []byte("xy"), false}, // one byte would be a static string
		{"full interner: allocated", func() *interner {
			in := newInterner()
			for i := range internMaxEntries {
				in.string([]byte(strconv.Itoa(i)))
			}
			return in
		}(), []byte("new"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := c.in.string(c.b), c.in.string(c.b)
			if a != string(c.b) || b != string(c.b) {
				t.Fatalf("string(%q) = %q, %q", c.b, a, b)
			}
			if shared := unsafe.StringData(a) == unsafe.StringData(b); shared != c.shared {
				t.Errorf("string(%q) twice shares its bytes = %v, want %v", c.b, shared, c.shared)
			}
			if c.in != nil && len(c.in.m) > internMaxEntries {
				t.Errorf("interner holds %d values, want at most %d", len(c.in.m), internMaxEntries)
			}
		})
	}
}

// TestPlainStringEveryPosition puts each byte that needs a look (a quote,
// a backslash escape, control characters, UTF-8, invalid UTF-8) at every
// position of strings of 0–24 bytes, so that it falls in and around every
// eight-byte step of plainString, and holds the line's decoding to
// json.Unmarshal and plainString's end to the closing quote's index.
func TestPlainStringEveryPosition(t *testing.T) {
	specials := []string{`"`, `\\`, `\"`, `\n`, `\u0041`, "\n", "\x1f", "\x7f", "é", "\xff", "\xe2\x82", "/"}
	for n := 0; n <= 24; n++ {
		for pos := 0; pos <= n; pos++ {
			for _, sp := range specials {
				s := strings.Repeat("a", pos) + sp + strings.Repeat("b", n-pos)
				for _, tail := range []string{`","DeviceId":"d1"}`, ``} {
					decodesLikeUnmarshal(t, []byte(`{"RemoteUrl":"`+s+tail))
					// The closing quote: the first '"' not escaped.
					q := `"` + s + tail
					want := -1
					for k := 1; k < len(q); k++ {
						if q[k] == '\\' {
							k++
							continue
						}
						if q[k] == '"' {
							want = k + 1
							break
						}
					}
					if _, end, ok := plainString([]byte(q), 0, nil); ok && end != want {
						t.Fatalf("plainString(%q) ends at %d, want %d", q, end, want)
					}
				}
			}
		}
	}
}
