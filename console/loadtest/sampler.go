package loadtest

import (
	"sync"
	"time"
)

// ProcStats is a console process during the measured part of the run.
type ProcStats struct {
	PID          int     `json:"pid,omitempty"`
	PeakRSSBytes int64   `json:"peakRSSBytes"`
	EndRSSBytes  int64   `json:"endRSSBytes"`
	CPUSeconds   float64 `json:"cpuSeconds"`
	// CPUCores is CPU seconds per wall second (2.0 = both cores busy).
	CPUCores float64 `json:"cpuCores"`
}

// sampler reads the consoles' RSS every 250 ms.
type sampler struct {
	pids  []int
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	st    []ProcStats
	cpu0  []float64
	t0    time.Time
	// db is the root of the database server's process tree (0: not read):
	// its CPU, backends included, over the measured part.
	db   int
	db0  float64
	dbOK bool
}

// startSampler follows the processes of pids (0: not read).
func startSampler(pids ...int) *sampler {
	s := &sampler{pids: pids, stopc: make(chan struct{}), done: make(chan struct{}), st: make([]ProcStats, len(pids)), cpu0: make([]float64, len(pids))}
	for i, pid := range pids {
		s.st[i].PID = pid
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	for i, pid := range s.pids {
		if pid <= 0 {
			continue
		}
		if rss, _, ok := procSample(pid); ok {
			s.mu.Lock()
			s.st[i].PeakRSSBytes = max(s.st[i].PeakRSSBytes, rss)
			s.st[i].EndRSSBytes = rss
			s.mu.Unlock()
		}
	}
}

// mark starts the measured part: peak RSS and CPU count from here.
func (s *sampler) mark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t0 = time.Now()
	if s.db > 0 {
		s.db0, s.dbOK = treeCPU(s.db)
	}
	for i, pid := range s.pids {
		if rss, cpu, ok := procSample(pid); pid > 0 && ok {
			s.cpu0[i] = cpu
			s.st[i].PeakRSSBytes = rss
		}
	}
}

// dbCPU is the database server's CPU from mark to now (ok false when it
// was not read).
func (s *sampler) dbCPU() (st ProcStats, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db <= 0 || !s.dbOK || s.t0.IsZero() {
		return st, false
	}
	cpu, ok := treeCPU(s.db)
	if !ok {
		return st, false
	}
	st.PID = s.db
	st.CPUSeconds = cpu - s.db0
	if el := time.Since(s.t0).Seconds(); el > 0 {
		st.CPUCores = st.CPUSeconds / el
	}
	return st, true
}

func (s *sampler) stop() []ProcStats {
	close(s.stopc)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	el := time.Since(s.t0).Seconds()
	for i, pid := range s.pids {
		if _, cpu, ok := procSample(pid); pid > 0 && ok && !s.t0.IsZero() {
			s.st[i].CPUSeconds = cpu - s.cpu0[i]
			if el > 0 {
				s.st[i].CPUCores = s.st[i].CPUSeconds / el
			}
		}
	}
	return s.st
}
