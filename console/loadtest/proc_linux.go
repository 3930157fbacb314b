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
	f, ok := statFields(pid)
	if !ok {
		return rss, 0, false
	}
	return rss, ticks(f, 11) + ticks(f, 12), true
}

// statFields are the fields of /proc/PID/stat after the command name
// (field 3, the state, comes first).
func statFields(pid int) ([]string, bool) {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	// The command name may hold spaces and parentheses: the fields start
	// after the last ")".
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil, false
	}
	f := strings.Fields(s[i+2:])
	return f, len(f) >= 15
}

// ticks reads a clock-tick count among stat fields as seconds (USER_HZ is
// 100 on every Linux the console supports).
func ticks(f []string, i int) float64 {
	v, _ := strconv.ParseFloat(f[i], 64)
	return v / 100
}

// treeCPU is the CPU time (user + system, seconds) of the process root and
// all its descendants, the ones that have exited included: a live process
// counts its own time and what its exited, reaped children used (cutime,
// cstime, which hold theirs and their reaped descendants'). So a server
// that starts a process per connection — PostgreSQL's backends, children
// of the postmaster, come and go with connections — is counted in full
// between two readings, whatever started or ended in between
// (TestTreeCPUCountsChildren).
func treeCPU(root int) (float64, bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	children := map[int][]int{}
	cpu := map[int]float64{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, ok := statFields(pid)
		if !ok {
			continue // gone meanwhile
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
		// utime, stime, cutime, cstime: fields 14–17 of stat.
		cpu[pid] = ticks(f, 11) + ticks(f, 12) + ticks(f, 13) + ticks(f, 14)
	}
	if _, ok := cpu[root]; !ok {
		return 0, false
	}
	var total float64
	for todo := []int{root}; len(todo) > 0; {
		pid := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], children[pid]...)
		total += cpu[pid]
	}
	return total, true
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
