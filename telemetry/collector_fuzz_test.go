package telemetry

import (
	"os"
	"testing"
)

// FuzzCollectorParse feeds arbitrary decompressed chunk bodies to the
// collector's schema check: it must answer with records or a 4xx, never
// panic, and never accept a record that fails checkRecord.
func FuzzCollectorParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/chunk.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"Timestamp":"2026-11-22T10:00:00Z","DeviceId":"dev-1","ActionType":"ConnectionSuccess","RemotePort":70000}` + "\n"))
	c, err := NewCollector(CollectorConfig{Dir: f.TempDir(), AllowAnyToken: true, MaxDecompressed: 1 << 20, MaxLine: 4096})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, status, err := c.parse(gz(t, body), "dev-1")
		if err != nil {
			if status < 400 || status > 499 {
				t.Fatalf("rejection status %d, want 4xx (%v)", status, err)
			}
			return
		}
		for i := range recs {
			if cerr := checkRecord(&recs[i], "dev-1"); cerr != nil {
				t.Fatalf("accepted an invalid record: %v", cerr)
			}
		}
	})
}

func TestCollectorAcceptsTestdataChunk(t *testing.T) {
	seed, _ := os.ReadFile("testdata/chunk.ndjson")
	c, _ := NewCollector(CollectorConfig{Dir: t.TempDir(), AllowAnyToken: true})
	recs, status, err := c.parse(gz(t, seed), "dev-1")
	if err != nil || len(recs) != 3 {
		t.Fatalf("parse(testdata chunk) = %d records, %d, %v; want 3 records", len(recs), status, err)
	}
}
