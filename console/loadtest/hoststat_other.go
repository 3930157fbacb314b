//go:build !linux

package loadtest

// hostCPU is Linux's (/proc/stat): elsewhere the windows carry no host
// figures.
func hostCPU() (cpuTimes, bool) { return cpuTimes{}, false }

// hostLoad is Linux's (/proc/loadavg).
func hostLoad() (float64, bool) { return 0, false }
