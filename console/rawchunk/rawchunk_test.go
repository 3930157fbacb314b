package rawchunk

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/telemetry"
)

func TestScan(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	for _, l := range []string{
		`{"Timestamp":"2026-12-01T10:00:00Z","ActionType":"ConnectionSuccess","RemoteUrl":"https://WWW.Example.com/x"}`,
		`not json`,
		`{"Timestamp":"2026-12-01T10:00:01Z","ActionType":"NetworkProtectionBlocked","RemoteUrl":"notexample.com"}`,
		`{"Timestamp":"2026-12-01T10:00:02Z","RemoteUrl":"` + strings.Repeat("a", 70<<10) + `"}`,
		``,
		`{"ActionType":"NoTimestamp","RemoteUrl":"example.com"}`,
		`{"Timestamp":"2026-12-01T10:00:03Z","ActionType":"DnsQueryResponse","RemoteUrl":"example.com."}`,
	} {
		zw.Write([]byte(l + "\n"))
	}
	zw.Close()
	os.MkdirAll(filepath.Join(dir, "d"), 0o700)
	os.WriteFile(filepath.Join(dir, "d", "c.ndjson.gz"), b.Bytes(), 0o600)
	var got []string
	err := Scan(context.Background(), nil, dir, "d/c.ndjson.gz", Contains([]string{"example.com"}), func(r *telemetry.Record) bool {
		if MatchDomain(r, []string{"example.com"}) {
			got = append(got, r.ActionType)
		}
		return true
	})
	if err != nil || strings.Join(got, ",") != "ConnectionSuccess,DnsQueryResponse" {
		t.Errorf("Scan = %v, %v; want the two example.com records (not notexample.com, the long line or the one without a time)", got, err)
	}
	n := 0
	Scan(context.Background(), nil, dir, "d/c.ndjson.gz", nil, func(*telemetry.Record) bool { n++; return false })
	if n != 1 {
		t.Errorf("stop after the first record: %d calls", n)
	}
	if err := Scan(context.Background(), nil, dir, "d/gone.ndjson.gz", nil, func(*telemetry.Record) bool { return true }); err != nil {
		t.Errorf("a chunk removed by retention: %v", err)
	}
	if err := Scan(context.Background(), nil, dir, "../../etc/passwd", nil, func(*telemetry.Record) bool { return true }); err == nil {
		// Clean("/"+rel) keeps it under dir: the file simply is not there.
		if _, serr := os.Stat(filepath.Join(dir, "etc/passwd")); serr == nil {
			t.Error("escaped the chunk directory")
		}
	}
}
