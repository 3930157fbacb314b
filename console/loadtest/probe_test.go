package loadtest

import (
	"os"
	"slices"
	"testing"
	"time"
)

var testStart = time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)

// Counter increases go to the window of the later reading; the moment's
// figures (vacuums, waits, a busy checkpointer) to the window they were
// read in; windows without samples stay nil. The contrasts then split the
// uploads by those windows.
func TestProbeJoinAndContrasts(t *testing.T) {
	p := newProbe(testStart, 10*time.Second, time.Second, nil, nil)
	at := func(s float64) time.Time { return testStart.Add(time.Duration(s * float64(time.Second))) }
	base := pgSample{ckptStarted: 7, ckptBuffers: 1000, ckptLSN: "0/100", walRecords: 10, walFPI: 1, walBytes: 100}
	p.addPG(at(0), base, nil)
	s := base
	s.cpu, s.lwlock = 3, 1
	p.addPG(at(5), s, nil) // window 0: nothing but waits
	// Window 1: a checkpoint starts and writes (the reading at 10.5 s
	// also takes the 5–10 s change: the later reading's window).
	s.ckptStarted, s.ckptBuffers, s.ckptRunning, s.walFPI, s.walBytes = 8, 1500, true, 401, 5000
	s.cpu, s.lwlock = 0, 0
	p.addPG(at(10.5), s, nil)
	s.ckptBuffers, s.vacuums = 2500, []string{"traffic_hourly"}
	p.addPG(at(15), s, nil)
	// Window 2: it completes; a vacuum runs on two tables; a sample fails.
	s.ckptRunning, s.ckptLSN, s.ckptBuffers = false, "0/900", 3000
	s.vacuums, s.io, s.took = []string{"traffic_hourly", "users_hourly"}, 2, 800*time.Millisecond
	p.addPG(at(21), s, nil)
	p.addPG(at(22), pgSample{}, errTest)
	// Window 4: quiet, and no sample in window 3.
	s.vacuums, s.io, s.took = nil, 0, time.Millisecond
	p.addPG(at(41), s, nil)

	ws := make([]Window, 5)
	p.join(ws)
	w0, w1, w2, w3, w4 := ws[0].PG, ws[1].PG, ws[2].PG, ws[3].PG, ws[4].PG
	if w0 == nil || w0.Samples != 2 || w0.CheckpointsStarted != 0 || w0.Waits != (Waits{CPU: 3, LWLock: 1}) || w0.Checkpointing() || w0.Vacuuming() {
		t.Errorf("window 0: %+v", w0)
	}
	if w1 == nil || w1.CheckpointsStarted != 1 || w1.CheckpointsDone != 0 || w1.CheckpointBuffers != 1500 || w1.CheckpointSamples != 2 ||
		w1.WALFPI != 400 || w1.WALBytes != 4900 || !w1.Checkpointing() || w1.Vacuums != 1 || !slices.Equal(w1.VacuumTables, []string{"traffic_hourly"}) {
		t.Errorf("window 1: %+v", w1)
	}
	if w2 == nil || w2.CheckpointsDone != 1 || w2.CheckpointsStarted != 0 || w2.CheckpointBuffers != 500 || !w2.Checkpointing() ||
		w2.Vacuums != 2 || !slices.Equal(w2.VacuumTables, []string{"traffic_hourly", "users_hourly"}) || w2.Waits.IO != 2 ||
		w2.SampleErrors != 1 || w2.Samples != 1 || w2.MaxSampleMs != 800 {
		t.Errorf("window 2: %+v", w2)
	}
	if w3 != nil {
		t.Errorf("window 3 had no sample: %+v", w3)
	}
	if w4 == nil || w4.Checkpointing() || w4.Vacuuming() || w4.CheckpointBuffers != 0 {
		t.Errorf("window 4: %+v", w4)
	}

	// Uploads: 100 at 10 ms in each of windows 0, 3, 4; 100 at 500 ms in
	// window 1 (checkpoint and vacuum) and 100 at 900 ms in window 2.
	var up []sample
	for i := range 100 {
		f := float64(i) / 20
		up = append(up, sample{ms: 10, at: f}, sample{ms: 500, at: 10 + f}, sample{ms: 900, at: 20 + f}, sample{ms: 10, at: 30 + f}, sample{ms: 10, at: 40 + f})
	}
	cs := contrasts(up, ws, 10)
	want := []Contrast{
		{What: "checkpoint", Windows: 2, Uploads: 200, P99ms: 900, OtherWindows: 3, OtherUploads: 300, OtherP99ms: 10},
		{What: "vacuum", Windows: 2, Uploads: 200, P99ms: 900, OtherWindows: 3, OtherUploads: 300, OtherP99ms: 10},
	}
	if !slices.Equal(cs, want) {
		t.Errorf("contrasts\n%+v\nwant\n%+v", cs, want)
	}
	if cs := contrasts(up, make([]Window, 5), 10); cs != nil {
		t.Errorf("no PostgreSQL samples: contrasts %+v", cs)
	}
}

// A checkpointer busy in one sample of many (absorbing fsync requests
// between checkpoints) does not make a checkpoint window.
func TestCheckpointingNeedsMostSamples(t *testing.T) {
	if (&PGWindow{Samples: 10, CheckpointSamples: 1}).Checkpointing() {
		t.Error("one busy sample of 10 counted as a checkpoint")
	}
	if !(&PGWindow{Samples: 10, CheckpointSamples: 6}).Checkpointing() {
		t.Error("6 busy samples of 10 not counted")
	}
	if (*PGWindow)(nil).Checkpointing() || (*PGWindow)(nil).Vacuuming() {
		t.Error("an unsampled window counted")
	}
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("sample failed")

// The processes' CPU between two readings goes to the window of the later
// one, in cores over the time between them; a process missing from a
// reading adds nothing, and the database stays 0 when it was never read.
func TestProbeProcessCores(t *testing.T) {
	p := newProbe(testStart, 10*time.Second, time.Second, nil, nil)
	at := func(s float64) time.Time { return testStart.Add(time.Duration(s * float64(time.Second))) }
	r := func(s, console, db, sim float64, dbOK bool) procCPU {
		return procCPU{at: at(s), console: console, db: db, sim: sim, consoleOK: true, dbOK: dbOK, simOK: true}
	}
	p.addProcs(r(0, 100, 500, 10, true))
	p.addProcs(r(5, 103.5, 505, 11, true))    // window 0: 5 s
	p.addProcs(r(10.5, 107, 510.5, 12, true)) // window 1: 5.5 s
	p.addProcs(r(20.5, 107, 0, 13, false))    // window 2: the database not read
	p.addProcs(r(21, 108, 530, 13.5, true))   // window 2: nor before
	ws := make([]Window, 3)
	p.join(ws)
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	if h := ws[0].Host; h == nil || !near(h.ConsoleCores, 0.7) || !near(h.DatabaseCores, 1) || !near(h.SimulatorCores, 0.2) {
		t.Errorf("window 0: %+v", h)
	}
	if h := ws[1].Host; h == nil || !near(h.ConsoleCores, 3.5/5.5) || !near(h.DatabaseCores, 1) || !near(h.SimulatorCores, 1/5.5) {
		t.Errorf("window 1: %+v", h)
	}
	if h := ws[2].Host; h == nil || !near(h.ConsoleCores, 1/10.5) || h.DatabaseCores != 0 || !near(h.SimulatorCores, 1.5/10.5) {
		t.Errorf("window 2: %+v", h)
	}
}

// readProcs reads this process's own CPU (Linux), and the consoles'.
func TestReadProcsSelf(t *testing.T) {
	if _, _, ok := procSample(1); !ok {
		t.Skip("no /proc here")
	}
	p := newProbe(testStart, 10*time.Second, time.Second, nil, nil)
	p.consoles = []int{os.Getpid()}
	// Spin until this process has used a clock tick of CPU (10 ms).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if _, cpu, _ := procSample(os.Getpid()); cpu > 0 {
			break
		}
	}
	r := p.readProcs()
	if !r.simOK || !r.consoleOK || r.sim <= 0 || r.console != r.sim || r.dbOK {
		t.Errorf("readProcs: %+v", r)
	}
}
