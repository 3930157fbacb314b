package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/netward/netward/console/loadtest"
)

// The slowest windows are listed slowest first, each with what was
// sampled in it; a window with nothing sampled has only its latency; the
// contrast line compares the windows with a checkpoint or a vacuum.
func TestPrintWindows(t *testing.T) {
	r := &loadtest.Report{Windows: []loadtest.Window{
		{Start: 0, P99ms: 300, Maxms: 400, Uploads: 900},
		{Start: 10, P99ms: 1772, Maxms: 2100, Uploads: 800,
			PG: &loadtest.PGWindow{Samples: 10, CheckpointsStarted: 1, CheckpointSamples: 7, CheckpointBuffers: 34000, WALFPI: 12345, WALBytes: 310e6,
				Vacuums: 1, VacuumTables: []string{"traffic_hourly"}, Waits: loadtest.Waits{CPU: 31, IO: 4, LWLock: 12}},
			Host: &loadtest.HostWindow{BusyPct: 97.2, IOWaitPct: 1, StealPct: 3.4, Load1: 5.25, Samples: 10}},
		{Start: 20, P99ms: 100, Maxms: 150, Uploads: 1000,
			PG: &loadtest.PGWindow{SampleErrors: 3}},
		{Start: 30, P99ms: 900, Maxms: 950, Uploads: 700,
			PG: &loadtest.PGWindow{Samples: 10, CheckpointSamples: 10, WALFPI: 800, WALBytes: 2e6, MaxSampleMs: 640, SampleErrors: 1}},
	}, Contrasts: []loadtest.Contrast{
		{What: "checkpoint", Windows: 2, Uploads: 1500, P99ms: 1500, OtherWindows: 2, OtherUploads: 1900, OtherP99ms: 280},
		{What: "vacuum", Windows: 1, Uploads: 800, P99ms: 1772, OtherWindows: 3, OtherUploads: 0},
	}}
	var b bytes.Buffer
	printWindows(&b, r)
	want := []string{
		"upload p99 per 10 s window, the slowest 4 of 4 (--json has them all; s after the start: p99 ms):",
		"  10: 1772 ms (max 2100 ms, 800 uploads; ckpt 1 started in 7/10 samples, 34k buf written, fpi 12k, wal 310 MB, vac traffic_hourly, " +
			"active cpu 3.1/io 0.4/lock 0.0/lwlock 1.2/other 0.0, cpu 97 %, iowait 1 %, steal 3 %, load 5.2)",
		"  30: 900 ms (max 950 ms, 700 uploads; ckpt running in 10/10 samples, fpi 800, wal 2 MB, active cpu 0.0/io 0.0/lock 0.0/lwlock 0.0/other 0.0, " +
			"1 pg samples failed, slowest pg sample 640 ms)",
		"  0: 300 ms (max 400 ms, 900 uploads)",
		"  20: 100 ms (max 150 ms, 1000 uploads; pg not sampled: 3 samples failed)",
		"upload p99 in windows with a checkpoint running 1500 ms (2 windows) vs without 280 ms (2 windows); " +
			"with a vacuum running 1772 ms (1 windows) vs without - (3 windows)",
	}
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), strings.Join(want, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d\n got %s\nwant %s", i, got[i], want[i])
		}
	}

	b.Reset()
	printWindows(&b, &loadtest.Report{Windows: r.Windows[:1]})
	if b.Len() != 0 {
		t.Errorf("one window printed: %q", b.String())
	}
}

func TestKilo(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 950: "950", 1234: "1.2k", 12345: "12k", 3.45e6: "3.5M"} {
		if got := kilo(v); got != want {
			t.Errorf("kilo(%v) = %q, want %q", v, got, want)
		}
	}
}

// --store-conns reaches the started consoles' config as store.maxConns,
// and is left out when not given (an older --console-binary would refuse
// the key).
func TestStoreConf(t *testing.T) {
	if c := storeConf("postgres://x", 0); len(c) != 1 || c["dsn"] != "postgres://x" {
		t.Errorf("storeConf without conns = %v", c)
	}
	if c := storeConf("postgres://x", 4); c["maxConns"] != 4 || c["dsn"] != "postgres://x" {
		t.Errorf("storeConf with 4 = %v", c)
	}
}
