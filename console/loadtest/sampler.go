package loadtest

import (
	"sync"
	"time"
)

// ProcStats is the console process during the measured part of the run.
type ProcStats struct {
	PeakRSSBytes int64   `json:"peakRSSBytes"`
	EndRSSBytes  int64   `json:"endRSSBytes"`
	CPUSeconds   float64 `json:"cpuSeconds"`
	// CPUCores is CPU seconds per wall second (2.0 = both cores busy).
	CPUCores float64 `json:"cpuCores"`
}

// sampler reads the console's RSS every 250 ms.
type sampler struct {
	pid   int
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	st    ProcStats
	cpu0  float64
	t0    time.Time
}

func startSampler(pid int) *sampler {
	s := &sampler{pid: pid, stopc: make(chan struct{}), done: make(chan struct{})}
	if pid <= 0 {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, ok := procSample(pid); ok {
				s.mu.Lock()
				s.st.PeakRSSBytes = max(s.st.PeakRSSBytes, rss)
				s.st.EndRSSBytes = rss
				s.mu.Unlock()
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// mark starts the measured part: peak RSS and CPU count from here.
func (s *sampler) mark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t0 = time.Now()
	if rss, cpu, ok := procSample(s.pid); ok {
		s.cpu0 = cpu
		s.st.PeakRSSBytes = rss
	}
}

func (s *sampler) stop() ProcStats {
	if s.pid > 0 {
		close(s.stopc)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, cpu, ok := procSample(s.pid); ok && !s.t0.IsZero() {
		s.st.CPUSeconds = cpu - s.cpu0
		if el := time.Since(s.t0).Seconds(); el > 0 {
			s.st.CPUCores = s.st.CPUSeconds / el
		}
	}
	return s.st
}
