package loadtest

import "os"

// hostCPU reads the machine's CPU times (ok false when /proc/stat cannot
// be read or parsed).
func hostCPU() (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	c, err := parseCPUStat(string(b))
	return c, err == nil
}

// hostLoad is the 1-minute load average.
func hostLoad() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	v, err := parseLoadAvg(string(b))
	return v, err == nil
}
