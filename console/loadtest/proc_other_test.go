//go:build !linux

package loadtest

// cpuHelper: the process-tree CPU test is Linux's (it reads /proc); on
// other systems the helper role is never asked for.
func cpuHelper(string) int { return 2 }
