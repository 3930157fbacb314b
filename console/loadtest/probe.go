package loadtest

import (
	"context"
	"os"
	"slices"
	"sync"
	"time"
)

// HostWindow is the machine during a window (Linux: /proc/stat deltas,
// as shares of all its CPUs' time).
type HostWindow struct {
	BusyPct   float64 `json:"busyPct"`   // user, nice, system, irq, softirq
	IOWaitPct float64 `json:"iowaitPct"` // idle with I/O outstanding
	StealPct  float64 `json:"stealPct"`  // taken by the hypervisor for other guests
	Load1     float64 `json:"load1"`     // highest 1-minute load average read
	Samples   int     `json:"samples"`
	// ConsoleCores, DatabaseCores and SimulatorCores are the CPU the
	// consoles, the database server's process tree (when the run started
	// it) and this simulator used in the window, in cores (CPU seconds per
	// second between the window's readings): which of them took the
	// machine when a window was slow.
	ConsoleCores   float64 `json:"consoleCores"`
	DatabaseCores  float64 `json:"databaseCores,omitempty"`
	SimulatorCores float64 `json:"simulatorCores"`
}

// PGWindow is the PostgreSQL started for the run during a window: the
// counters' increase over it, and what the samples (one every second or
// so) saw, summed over them.
type PGWindow struct {
	Samples      int `json:"samples"`
	SampleErrors int `json:"sampleErrors,omitempty"`
	// MaxSampleMs is the slowest sample query: a server that takes long to
	// answer a read of its statistics views is stalled.
	MaxSampleMs float64 `json:"maxSampleMs"`
	// Checkpoints started (timed or requested; a timed one skipped for lack
	// of writes counts too) and completed, buffers the checkpointer wrote,
	// and the samples in which it was busy with one.
	CheckpointsStarted int64 `json:"checkpointsStarted"`
	CheckpointsDone    int64 `json:"checkpointsDone"`
	CheckpointBuffers  int64 `json:"checkpointBuffers"`
	CheckpointSamples  int   `json:"checkpointSamples"`
	// The WAL counters of a busy backend reach the statistics at most
	// once a second (an idle one's within 10 s): up to a second late.
	WALRecords int64 `json:"walRecords"`
	WALFPI     int64 `json:"walFpi"` // full-page images
	WALBytes   int64 `json:"walBytes"`
	// Vacuums is the most vacuums seen running at once (autovacuum's and
	// any VACUUM), VacuumTables the tables they were on; Analyzes and
	// AnalyzeTables the same for ANALYZE.
	Vacuums       int      `json:"vacuums"`
	VacuumTables  []string `json:"vacuumTables,omitempty"`
	Analyzes      int      `json:"analyzes,omitempty"`
	AnalyzeTables []string `json:"analyzeTables,omitempty"`
	// Active client backends by wait event class, summed over the samples
	// (divide by Samples for the mean).
	Waits Waits `json:"activeBackends"`
}

// Waits counts active client backends by what they were doing.
type Waits struct {
	CPU    int `json:"cpu"` // no wait event: running, or runnable
	IO     int `json:"io"`
	Lock   int `json:"lock"`
	LWLock int `json:"lwlock"`
	Other  int `json:"other"`
}

// Checkpointing says whether a checkpoint ran in the window: one started
// or completed in it, or the checkpointer was busy in most of its samples
// (between two checkpoints it may be busy for a moment absorbing fsync
// requests, which one sample can catch).
func (p *PGWindow) Checkpointing() bool {
	return p != nil && (p.CheckpointsStarted > 0 || p.CheckpointsDone > 0 || p.CheckpointSamples*2 > p.Samples)
}

// Vacuuming says whether a vacuum ran in the window.
func (p *PGWindow) Vacuuming() bool { return p != nil && p.Vacuums > 0 }

// probe samples the host and, when it has one, a PostgreSQL server every
// interval from start, and adds up what it reads per window of the
// uploads (the window of the later of two readings takes the difference
// of the counters between them).
type probe struct {
	start            time.Time
	window, interval time.Duration
	pg               *pgProbe
	onError          func(error)

	mu      sync.Mutex
	host    map[int]*hostAcc
	pgw     map[int]*PGWindow
	prevCPU cpuTimes
	haveCPU bool
	// consoles (PIDs) and db (the database server's root PID, 0: none)
	// are read with the host; prevProc is the last reading.
	consoles []int
	db       int
	prevProc procCPU
	haveProc bool
	prevPG   pgSample
	havePG   bool
	failedPG bool

	stopc, done chan struct{}
}

type hostAcc struct {
	cpu     cpuTimes
	load    float64
	samples int
	// procs: the CPU seconds of the consoles, the database and this
	// process over elapsed seconds between readings.
	console, db, sim, elapsed float64
	dbRead                    bool
}

// procCPU is one reading of the processes' CPU seconds.
type procCPU struct {
	at               time.Time
	console, db, sim float64
	consoleOK, dbOK  bool
	simOK            bool
}

func newProbe(start time.Time, window, interval time.Duration, pg *pgProbe, onError func(error)) *probe {
	return &probe{start: start, window: window, interval: interval, pg: pg, onError: onError,
		host: map[int]*hostAcc{}, pgw: map[int]*PGWindow{}}
}

// run samples until stop; the first reading is at once (the baseline),
// the last one when stopped.
func (p *probe) run(ctx context.Context) {
	p.stopc, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			p.sample(ctx)
			select {
			case <-p.stopc:
				// A last reading: the window the run ended in has one.
				p.sample(ctx)
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// stop ends the sampling (and closes the PostgreSQL connection).
func (p *probe) stop() {
	if p.stopc != nil {
		close(p.stopc)
		<-p.done
		p.stopc = nil
	}
	if p.pg != nil {
		_ = p.pg.close()
		p.pg = nil // the sampling has ended: nothing reads it
	}
}

// minSampleWait is the least a PostgreSQL sample is waited for.
const minSampleWait = 2 * time.Second

func (p *probe) index(at time.Time) int { return max(int(at.Sub(p.start)/p.window), 0) }

func (p *probe) sample(ctx context.Context) {
	if c, ok := hostCPU(); ok {
		load, _ := hostLoad()
		p.addHost(time.Now(), c, load)
	}
	p.addProcs(p.readProcs())
	if p.pg != nil {
		// A sample that does not come back within a few intervals is
		// given up: the next one tries again. Never sooner than
		// minSampleWait: on a loaded host a reading slower than a short
		// interval is still a reading, and giving it up costs the
		// connection (pgx closes it), so the next one waits for a new
		// backend too.
		sctx, cancel := context.WithTimeout(ctx, max(5*p.interval, minSampleWait))
		s, err := p.pg.sample(sctx)
		cancel()
		p.addPG(time.Now(), s, err)
	}
}

func (p *probe) addHost(at time.Time, c cpuTimes, load float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.host[p.index(at)]
	if h == nil {
		h = &hostAcc{}
		p.host[p.index(at)] = h
	}
	if p.haveCPU {
		h.cpu = h.cpu.add(c.sub(p.prevCPU))
		h.samples++
	}
	h.load = max(h.load, load)
	p.prevCPU, p.haveCPU = c, true
}

// readProcs reads the CPU seconds of the consoles, the database's process
// tree and this process (Linux; elsewhere nothing is read).
func (p *probe) readProcs() procCPU {
	r := procCPU{at: time.Now(), consoleOK: len(p.consoles) > 0}
	for _, pid := range p.consoles {
		_, cpu, ok := procSample(pid)
		r.console += cpu
		r.consoleOK = r.consoleOK && ok
	}
	if p.db > 0 {
		r.db, r.dbOK = treeCPU(p.db)
	}
	_, r.sim, r.simOK = procSample(os.Getpid())
	return r
}

// addProcs adds the processes' CPU since the last reading to the window
// of this one; a process not read in either reading adds nothing (its
// share of the window then reads 0).
func (p *probe) addProcs(r procCPU) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.haveProc {
		prev := p.prevProc
		i := p.index(r.at)
		h := p.host[i]
		if h == nil {
			h = &hostAcc{}
			p.host[i] = h
		}
		h.elapsed += r.at.Sub(prev.at).Seconds()
		if r.consoleOK && prev.consoleOK {
			h.console += max(r.console-prev.console, 0)
		}
		if r.dbOK && prev.dbOK {
			h.db += max(r.db-prev.db, 0)
			h.dbRead = true
		}
		if r.simOK && prev.simOK {
			h.sim += max(r.sim-prev.sim, 0)
		}
	}
	p.prevProc, p.haveProc = r, true
}

func (p *probe) addPG(at time.Time, s pgSample, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.pgw[p.index(at)]
	if w == nil {
		w = &PGWindow{}
		p.pgw[p.index(at)] = w
	}
	if err != nil {
		w.SampleErrors++
		if !p.failedPG && p.onError != nil {
			p.onError(err)
		}
		p.failedPG = true
		return
	}
	w.Samples++
	w.MaxSampleMs = max(w.MaxSampleMs, float64(s.took.Microseconds())/1000)
	if p.havePG {
		prev := p.prevPG
		w.CheckpointsStarted += max(s.ckptStarted-prev.ckptStarted, 0)
		w.CheckpointBuffers += max(s.ckptBuffers-prev.ckptBuffers, 0)
		if s.ckptLSN != prev.ckptLSN && s.ckptLSN != "" && prev.ckptLSN != "" {
			w.CheckpointsDone++
		}
		w.WALRecords += max(s.walRecords-prev.walRecords, 0)
		w.WALFPI += max(s.walFPI-prev.walFPI, 0)
		w.WALBytes += max(s.walBytes-prev.walBytes, 0)
	}
	p.prevPG, p.havePG = s, true
	if s.ckptRunning {
		w.CheckpointSamples++
	}
	w.Vacuums = max(w.Vacuums, len(s.vacuums))
	w.VacuumTables = addNames(w.VacuumTables, s.vacuums)
	w.Analyzes = max(w.Analyzes, len(s.analyzes))
	w.AnalyzeTables = addNames(w.AnalyzeTables, s.analyzes)
	w.Waits.CPU += s.cpu
	w.Waits.IO += s.io
	w.Waits.Lock += s.lock
	w.Waits.LWLock += s.lwlock
	w.Waits.Other += s.other
}

// addNames adds the names not yet in list, in the order first seen.
func addNames(list, names []string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// join gives each window what was sampled in it (nil where nothing was).
func (p *probe) join(ws []Window) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range ws {
		if h := p.host[i]; h != nil && (h.samples > 0 || h.elapsed > 0) {
			d := h.cpu
			hw := &HostWindow{Load1: h.load, Samples: h.samples}
			if t := float64(d.total()); t > 0 {
				hw.BusyPct, hw.IOWaitPct, hw.StealPct = 100*float64(d.busy())/t, 100*float64(d.iowait)/t, 100*float64(d.steal)/t
			}
			if h.elapsed > 0 {
				hw.ConsoleCores, hw.SimulatorCores = h.console/h.elapsed, h.sim/h.elapsed
				if h.dbRead {
					hw.DatabaseCores = h.db / h.elapsed
				}
			}
			ws[i].Host = hw
		}
		if w := p.pgw[i]; w != nil {
			c := *w
			ws[i].PG = &c
		}
	}
}

// Contrast compares the uploads acknowledged in the windows where
// something ran with those in the others.
type Contrast struct {
	What         string  `json:"what"` // "checkpoint", "vacuum"
	Windows      int     `json:"windows"`
	Uploads      int     `json:"uploads"`
	P99ms        float64 `json:"p99ms"`
	OtherWindows int     `json:"otherWindows"`
	OtherUploads int     `json:"otherUploads"`
	OtherP99ms   float64 `json:"otherP99ms"`
}

// contrasts splits the uploads by whether their window (windowLen long)
// had a checkpoint running, and by whether it had a vacuum: the p99 of
// each side. Nil when no window has PostgreSQL samples.
func contrasts(s []sample, ws []Window, windowLen float64) []Contrast {
	sampled := false
	for _, w := range ws {
		sampled = sampled || w.PG != nil && w.PG.Samples > 0
	}
	if !sampled {
		return nil
	}
	var out []Contrast
	for _, c := range []struct {
		what string
		in   func(*PGWindow) bool
	}{{"checkpoint", (*PGWindow).Checkpointing}, {"vacuum", (*PGWindow).Vacuuming}} {
		var in, out2 []float64
		r := Contrast{What: c.what}
		for _, w := range ws {
			if c.in(w.PG) {
				r.Windows++
			} else {
				r.OtherWindows++
			}
		}
		for _, x := range s {
			i := max(int(x.at/windowLen), 0)
			if i < len(ws) && c.in(ws[i].PG) {
				in = append(in, x.ms)
			} else {
				out2 = append(out2, x.ms)
			}
		}
		slices.Sort(in)
		slices.Sort(out2)
		r.Uploads, r.P99ms, r.OtherUploads, r.OtherP99ms = len(in), pct(in, 99), len(out2), pct(out2, 99)
		out = append(out, r)
	}
	return out
}
