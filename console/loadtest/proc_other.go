//go:build !linux

package loadtest

// procSample is Linux-only (/proc); elsewhere the console's RSS and CPU
// are not reported.
func procSample(int) (int64, float64, bool) { return 0, 0, false }

// treeCPU is Linux-only (/proc): the database's CPU is not reported.
func treeCPU(int) (float64, bool) { return 0, false }

// RaiseFileLimit does nothing outside Linux.
func RaiseFileLimit(uint64) error { return nil }
