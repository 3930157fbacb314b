package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"time"
)

// The held long polls run in this process or, with Config.Procs > 1, spread
// over child poller processes: a process holds one descriptor per poll, and
// where the open-file hard limit is 20,000 (as in the sandbox the figures of
// docs/scale.md were measured in) one process cannot hold 20,000 polls plus
// its other descriptors.

// WorkerSpec is what a poller process reads from its standard input (one
// JSON value) before it starts its polls.
type WorkerSpec struct {
	// Consoles are the replicas' base URLs; a device polls the one its
	// Console indexes.
	Consoles    []string `json:"consoles"`
	Fingerprint string   `json:"fingerprint"`
	// SourceBase and Sources: the 127.77.x addresses this process dials
	// from (disjoint between processes, so no two share a source port
	// range).
	SourceBase int            `json:"sourceBase"`
	Sources    int            `json:"sources"`
	ETag       string         `json:"etag"` // the version the devices already have
	Devices    []WorkerDevice `json:"devices"`
}

// WorkerDevice is one polling device.
type WorkerDevice struct {
	ID      string `json:"id"`
	Token   string `json:"token"`
	Console int    `json:"console"`
}

// workerEvent is one line a poller process writes to its standard output:
// a 200 answer with Version that arrived at At (Unix nanoseconds), and
// the bytes its connections have read so far (Read, cumulative). Lines
// without a version only carry Read.
type workerEvent struct {
	Version string `json:"v,omitempty"`
	At      int64  `json:"at,omitempty"`
	Read    int64  `json:"read"`
}

// Worker is a poller process: it reads a WorkerSpec from in, holds one long
// poll per device, and writes a workerEvent line to out for every new
// version a device receives, until in is closed or ctx ends.
func Worker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	var spec WorkerSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("loadtest worker: read the spec from standard input: %w", err)
	}
	if len(spec.Consoles) == 0 {
		return errors.New("loadtest worker: the spec names no console")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The parent closes our standard input to stop us.
	go func() { _, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), in)); cancel() }()

	var cnt counter
	tr := newTransport(newSourcesFrom(spec.SourceBase, spec.Sources), spec.Fingerprint, len(spec.Devices)+16, &cnt)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	var mu sync.Mutex
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	var werr error
	emit := func(ev workerEvent) {
		mu.Lock()
		defer mu.Unlock()
		if werr == nil {
			werr = enc.Encode(ev)
		}
	}
	flush := func() {
		mu.Lock()
		defer mu.Unlock()
		if werr == nil {
			werr = bw.Flush()
		}
	}
	var wg sync.WaitGroup
	for _, d := range spec.Devices {
		base := spec.Consoles[d.Console%len(spec.Consoles)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			poll(ctx, hc, base, d.Token, spec.ETag, func(v string, at time.Time) {
				emit(workerEvent{Version: v, At: at.UnixNano(), Read: cnt.read.Load()})
			})
		}()
	}
	// Arrivals carry their own time, so batching the writes costs the
	// measurement nothing; the tick also reports bytes read meanwhile.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	last := int64(-1)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
			if r := cnt.read.Load(); r != last {
				emit(workerEvent{Read: r})
				last = r
			}
			flush()
		}
	}
	wg.Wait()
	flush()
	return werr
}

// pollers are the child poller processes of a run.
type pollers struct {
	procs []*pollerProc
	wg    sync.WaitGroup // the readers of their output
}

type pollerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	err   error // from reading its output
}

// startPollers starts procs poller processes with cmd and gives each a
// share of devs (device i polls consoles[i%len(consoles)]); every arrival
// they report goes to arrived, every byte they read to cnt.
func startPollers(cmd func() *exec.Cmd, procs int, spec WorkerSpec, devs []WorkerDevice, arrived func(string, time.Time), cnt *counter) (*pollers, error) {
	if cmd == nil {
		return nil, errors.New("loadtest: Procs > 1 needs Config.Worker, the command of a poller process")
	}
	ps := &pollers{}
	per := spec.Sources / procs
	for i := range procs {
		s := spec
		s.SourceBase, s.Sources = spec.SourceBase+i*max(per, 1), max(per, 1)
		s.Devices = share(devs, i, procs)
		c := cmd()
		stdin, err := c.StdinPipe()
		if err != nil {
			ps.stop()
			return nil, err
		}
		stdout, err := c.StdoutPipe()
		if err != nil {
			ps.stop()
			return nil, err
		}
		if err := c.Start(); err != nil {
			ps.stop()
			return nil, fmt.Errorf("loadtest: start poller process %d: %w", i, err)
		}
		p := &pollerProc{cmd: c, stdin: stdin}
		ps.procs = append(ps.procs, p)
		ps.wg.Add(1)
		go func() { defer ps.wg.Done(); p.err = readEvents(stdout, arrived, cnt) }()
		if err := json.NewEncoder(stdin).Encode(s); err != nil {
			ps.stop()
			return nil, fmt.Errorf("loadtest: poller process %d: %w", i, err)
		}
	}
	return ps, nil
}

// share is the i-th of n near-equal parts of devs.
func share[T any](devs []T, i, n int) []T {
	return devs[i*len(devs)/n : (i+1)*len(devs)/n]
}

// readEvents reads a poller process's events until its output ends.
func readEvents(r io.Reader, arrived func(string, time.Time), cnt *counter) error {
	dec := json.NewDecoder(r)
	var last int64
	for {
		var ev workerEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			_, _ = io.Copy(io.Discard, r)
			return fmt.Errorf("loadtest: poller process output: %w", err)
		}
		if ev.Read > last {
			cnt.read.Add(ev.Read - last)
			last = ev.Read
		}
		if ev.Version != "" {
			arrived(ev.Version, time.Unix(0, ev.At))
		}
	}
}

// stop ends the poller processes (closing their input) and waits for them.
func (ps *pollers) stop() error {
	if ps == nil {
		return nil
	}
	for _, p := range ps.procs {
		p.stdin.Close()
	}
	var errs []error
	done := make(chan struct{})
	go func() { ps.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		for _, p := range ps.procs {
			_ = p.cmd.Process.Kill()
		}
		<-done
	}
	for i, p := range ps.procs {
		if err := p.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("poller process %d: %w", i, err))
		}
		if p.err != nil {
			errs = append(errs, p.err)
		}
	}
	return errors.Join(errs...)
}
