package loadtest

import (
	"math"
	"strings"
	"testing"
)

// parseCPUStat reads the aggregate line whatever surrounds it, takes
// short lines of old kernels, and refuses what is not a cpu line's
// numbers.
func TestParseCPUStat(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     cpuTimes
		err      string
	}{
		{name: "current kernel, guest fields left out",
			in:   "cpu  100 5 50 800 20 3 7 15 40 2\ncpu0 50 2 25 400 10 1 3 7 20 1\nintr 123 4 5\nctxt 999\n",
			want: cpuTimes{user: 100, nice: 5, system: 50, idle: 800, iowait: 20, irq: 3, softirq: 7, steal: 15}},
		{name: "per-CPU lines first", in: "cpu0 1 1 1 1\ncpu 4 3 2 1\n", want: cpuTimes{user: 4, nice: 3, system: 2, idle: 1}},
		{name: "old kernel without iowait and steal", in: "cpu 10 0 5 85\n", want: cpuTimes{user: 10, system: 5, idle: 85}},
		{name: "seven states, no steal", in: "cpu 1 2 3 4 5 6 7\n", want: cpuTimes{1, 2, 3, 4, 5, 6, 7, 0}},
		{name: "no aggregate line", in: "cpu0 1 2 3 4\nintr 5\n", err: "no aggregate cpu line"},
		{name: "empty", in: "", err: "no aggregate cpu line"},
		{name: "too few states", in: "cpu 1 2 3\n", err: "at least 4"},
		{name: "not a number", in: "cpu 1 2 x 4\n", err: "cpu state 3"},
		{name: "negative", in: "cpu 1 -2 3 4\n", err: "cpu state 2"},
		{name: "truncated mid-line read as the states it has", in: "cpu 1 2 3 4 5", want: cpuTimes{1, 2, 3, 4, 5, 0, 0, 0}},
		{name: "a cpu-prefixed word is not the line", in: "cpufreq 9 9 9 9\ncpu 1 1 1 1\n", want: cpuTimes{1, 1, 1, 1, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPUStat(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// The shares of a window come from the difference of two readings; a
// state that went backwards counts 0, not a wrapped number.
func TestCPUDeltaShares(t *testing.T) {
	a, _ := parseCPUStat("cpu 1000 0 500 8000 100 0 0 50\n")
	b, _ := parseCPUStat("cpu 1600 0 800 8300 200 0 0 150\n") // +600 user +300 sys +300 idle +100 iowait +100 steal
	d := b.sub(a)
	if d.total() != 1400 || d.busy() != 900 || d.iowait != 100 || d.steal != 100 {
		t.Fatalf("delta %+v: total %d busy %d", d, d.total(), d.busy())
	}
	back := a.sub(b)
	if back.total() != 0 {
		t.Errorf("counters going backwards: delta %+v, want zeros", back)
	}
	p := newProbe(testStart, 10e9, 1e9, nil, nil)
	p.addHost(testStart.Add(500e6), a, 1.5)
	p.addHost(testStart.Add(1500e6), b, 4.25)
	p.addHost(testStart.Add(2500e6), b, 2) // nothing happened: adds 0
	ws := make([]Window, 1)
	p.join(ws)
	h := ws[0].Host
	if h == nil || h.Samples != 2 || h.Load1 != 4.25 || !near(h.BusyPct, 100*900/1400.0) || !near(h.StealPct, 100*100/1400.0) || !near(h.IOWaitPct, 100*100/1400.0) {
		t.Fatalf("window %+v", h)
	}
}

func TestParseLoadAvg(t *testing.T) {
	if v, err := parseLoadAvg("5.47 4.98 3.10 7/912 12345\n"); err != nil || v != 5.47 {
		t.Errorf("%v, %v", v, err)
	}
	for _, bad := range []string{"", "  \n", "x 1 2"} {
		if _, err := parseLoadAvg(bad); err == nil {
			t.Errorf("%q read without an error", bad)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
