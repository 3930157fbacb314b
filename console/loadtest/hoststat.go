package loadtest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// cpuTimes is the machine's aggregate CPU time by state, in clock ticks,
// from the "cpu " line of /proc/stat. Guest time is left out: the kernel
// already counts it in user and nice.
type cpuTimes struct {
	user, nice, system, idle, iowait, irq, softirq, steal uint64
}

func (c cpuTimes) total() uint64 {
	return c.user + c.nice + c.system + c.idle + c.iowait + c.irq + c.softirq + c.steal
}

// busy is the time spent running something: everything but idle, iowait
// (idle with I/O outstanding) and steal (the hypervisor ran another guest).
func (c cpuTimes) busy() uint64 { return c.user + c.nice + c.system + c.irq + c.softirq }

// sub is c - prev, state by state; a counter that went backwards (a
// reading across a CPU going offline can) gives 0 for that state rather
// than a wrapped huge number.
func (c cpuTimes) sub(prev cpuTimes) cpuTimes {
	d := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return cpuTimes{d(c.user, prev.user), d(c.nice, prev.nice), d(c.system, prev.system), d(c.idle, prev.idle),
		d(c.iowait, prev.iowait), d(c.irq, prev.irq), d(c.softirq, prev.softirq), d(c.steal, prev.steal)}
}

func (c cpuTimes) add(o cpuTimes) cpuTimes {
	return cpuTimes{c.user + o.user, c.nice + o.nice, c.system + o.system, c.idle + o.idle,
		c.iowait + o.iowait, c.irq + o.irq, c.softirq + o.softirq, c.steal + o.steal}
}

// parseCPUStat reads the aggregate "cpu " line of /proc/stat's text. The
// first four states (user, nice, system, idle) are required; kernels
// older than the fields iowait, irq, softirq and steal leave them out, and
// they read as 0. The per-CPU lines ("cpu0 …") and the rest are ignored.
func parseCPUStat(s string) (cpuTimes, error) {
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 5 {
			return cpuTimes{}, fmt.Errorf("/proc/stat: cpu line with %d states, want at least 4: %q", len(f)-1, line)
		}
		var v [8]uint64
		for i := range min(len(f)-1, len(v)) {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat: cpu state %d: %w", i+1, err)
			}
			v[i] = n
		}
		return cpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, nil
	}
	return cpuTimes{}, errors.New("/proc/stat: no aggregate cpu line")
}

// parseLoadAvg reads the 1-minute load average, the first field of
// /proc/loadavg.
func parseLoadAvg(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("/proc/loadavg: empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/loadavg: %w", err)
	}
	return v, nil
}
