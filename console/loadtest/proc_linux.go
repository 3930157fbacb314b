package loadtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procSample reads a process's resident memory (VmRSS, bytes) and its CPU
// time (user + system, seconds) from /proc.
func procSample(pid int) (rss int64, cpu float64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, found := strings.CutPrefix(line, "VmRSS:"); found {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			rss = kb << 10
		}
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return rss, 0, false
	}
	// Fields after the command name (which may hold spaces) start at ")".
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return rss, 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	// USER_HZ is 100 on every Linux the console supports.
	return rss, (ut + stime) / 100, true
}

// RaiseFileLimit lifts the open-file limit to n (held polls are one
// descriptor each); root may raise the hard limit too. Where the hard limit
// cannot be raised (a container), the soft one goes up to it and the error
// says how far.
func RaiseFileLimit(n uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= n {
		return nil
	}
	want := l
	want.Cur, want.Max = n, max(l.Max, n)
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	if err == nil {
		return nil
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return fmt.Errorf("open-file limit %d (hard), %d wanted: %w", l.Max, n, err)
}
