// Package loadtest is the fleet simulator behind `netward-console
// loadtest`: it plays N enrolled devices against a running console over
// loopback — enrollment, long polls held open, chunk uploads of realistic
// records — from many 127.x source addresses, and reports what the console
// sustained (chunks/s, records/s, upload and feed-delivery latency, errors,
// the console's RSS and CPU) and whether the aggregates count every record
// it acknowledged exactly once (docs/scale.md).
package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config says what fleet to play.
type Config struct {
	// Console is the base URL (https://127.0.0.1:8443); Fingerprint the
	// SHA-256 of its certificate (hex, colons allowed; "" trusts any).
	Console, Fingerprint string
	// AdminName and AdminPassword sign in to make the enrollment key, tag
	// apps and read the aggregates back.
	AdminName, AdminPassword string
	// PID is the console's process id, for its RSS and CPU (0: not read).
	PID int
	// DatabasePID is the root of the database server's process tree (a
	// PostgreSQL started for the run: its postmaster, or the runuser
	// above it); its CPU over the uploads, backends included, is reported
	// (0: not read).
	DatabasePID int
	// Measuring, when set, is called as the measured part (the uploads)
	// starts: e.g. to reset pg_stat_statements.
	Measuring func(ctx context.Context)
	// DatabaseDSN is the database of a PostgreSQL started for the run
	// (nothing else on it): sampled every ProbeInterval (1 s) over the
	// uploads, on one connection, for each window's checkpoints, WAL,
	// vacuums and backends' wait events ("": not sampled). The host's CPU
	// and load are sampled with it in any case (Linux).
	DatabaseDSN   string
	ProbeInterval time.Duration
	// Replicas are further consoles on Console's database (their PIDs in
	// ReplicaPIDs): enrollment, polls and uploads are spread over all,
	// device i on console i mod (1+len(Replicas)), as a load balancer
	// would; the admin API (tags, the check) goes to Console, so a change
	// reaches the other replicas' polls through the database.
	Replicas    []string
	ReplicaPIDs []int
	// Procs > 1 spreads the held polls over that many child poller
	// processes, each started by Worker (a command running the Worker
	// function on its standard input and output): one process holds one
	// descriptor per poll, and cannot hold more than its open-file limit.
	Procs  int
	Worker func() *exec.Cmd
	// Pprof is the console's profile endpoint (http://127.0.0.1:PORT/debug/pprof/,
	// `serve --pprof`); with it, FeedProfile+".cpu.pprof" gets a CPU profile
	// of the first feed change's fan-out (ProfileSeconds, 10 s) and
	// FeedProfile+".heap.pprof" the heap after it, held polls included.
	Pprof, FeedProfile string
	ProfileSeconds     int
	// Devices are enrolled; Polls of them hold a long poll all along;
	// Uploaders of them upload chunks, one at a time each, for Duration.
	Devices, Polls, Uploaders int
	Duration                  time.Duration
	// Rate caps the records/s offered (0: as fast as the console takes
	// them). Uploads are full chunks of FullRecords (4,000: the agent's
	// cap) one time in FullEvery, small hourly ones of SmallRecords
	// otherwise.
	Rate                      int
	FullEvery                 int
	FullRecords, SmallRecords int
	// FeedChanges is how many app tag changes are made during the run, each
	// measured until every held poll has its sequence (FeedTimeout).
	FeedChanges int
	FeedTimeout time.Duration
	// Sources is how many 127.x source addresses connections use.
	Sources int
	// EnrollConcurrency enrollments run at once.
	EnrollConcurrency int
	Names             Names
	Log               *slog.Logger
	Now               func() time.Time
}

func (c *Config) defaults() {
	if c.AdminName == "" {
		c.AdminName = "admin"
	}
	c.Devices = max(c.Devices, c.Polls, c.Uploaders, 1)
	for len(c.ReplicaPIDs) < len(c.Replicas) {
		c.ReplicaPIDs = append(c.ReplicaPIDs, 0) // not read
	}
	if c.FullEvery <= 0 {
		c.FullEvery = 4
	}
	if c.FullRecords <= 0 {
		c.FullRecords = 4000
	}
	if c.SmallRecords <= 0 {
		c.SmallRecords = 150
	}
	if c.FeedTimeout <= 0 {
		c.FeedTimeout = time.Minute
	}
	if c.Sources <= 0 {
		// Enough that concurrent enrollments come from different
		// addresses (the console rate-limits per address, as a fleet
		// enrolls from many), and that no address runs out of ports.
		c.Sources = max(64, 1+(c.Polls+c.Uploaders)/8000)
	}
	if c.EnrollConcurrency <= 0 {
		c.EnrollConcurrency = 16
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.ProfileSeconds <= 0 {
		c.ProfileSeconds = 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = time.Second
	}
}

// Report is what a run measured.
type Report struct {
	Devices        int     `json:"devices"`
	EnrollSeconds  float64 `json:"enrollSeconds"`
	HeldPolls      int     `json:"heldPolls"`
	PollsHeldAfter float64 `json:"pollsHeldSeconds"` // until all polls were held

	Seconds       float64 `json:"seconds"`
	Chunks        int64   `json:"chunks"`
	Records       int64   `json:"records"`
	ChunksPerSec  float64 `json:"chunksPerSecond"`
	RecordsPerSec float64 `json:"recordsPerSecond"`
	UploadBytes   int64   `json:"uploadBytes"`
	UploadP50ms   float64 `json:"uploadP50ms"`
	UploadP99ms   float64 `json:"uploadP99ms"`
	UploadMaxms   float64 `json:"uploadMaxms"`
	// The same by kind of chunk: the small hourly ones and the full
	// 4,000-record ones (a tail made of one kind says where to look).
	SmallP99ms float64 `json:"smallP99ms"`
	FullP99ms  float64 `json:"fullP99ms"`
	// Windows are the uploads acknowledged in each 10 s of the run, so a
	// tail that comes in bursts (a checkpoint, a fold, a feed change) shows
	// when it came, with what the host and PostgreSQL did meanwhile.
	Windows []Window `json:"windows,omitempty"`
	// Contrasts are the p99 of the uploads in windows with a checkpoint
	// running against the others, and with a vacuum against the others
	// (PostgreSQL sampled only).
	Contrasts      []Contrast `json:"contrasts,omitempty"`
	Busy           int64      `json:"busy503"`
	Errors         int64      `json:"errors"`
	FirstErrors    []string   `json:"firstErrors,omitempty"`
	Unacknowledged int64      `json:"unacknowledgedChunks"`

	Feed []FeedChange `json:"feed,omitempty"`

	// PollerProcs is how many processes held the polls (1: this one);
	// HeldPerConsole the polls each console held.
	PollerProcs    int   `json:"pollerProcs"`
	HeldPerConsole []int `json:"heldPerConsole,omitempty"`

	Console  ProcStats   `json:"console"`
	Replicas []ProcStats `json:"replicas,omitempty"`
	// Database is the database server's CPU over the uploads (its whole
	// process tree: PostgreSQL's backends), when Config.DatabasePID is set.
	Database *ProcStats `json:"database,omitempty"`
	// CPU per record acknowledged over the uploads, microseconds: the
	// consoles' (replicas summed) and the database server's (0: not read).
	ConsoleCPUPerRecordUs  float64 `json:"consoleCpuPerRecordUs"`
	DatabaseCPUPerRecordUs float64 `json:"databaseCpuPerRecordUs,omitempty"`

	// Check compares the aggregates with what was acknowledged.
	Check Check `json:"check"`
}

// Window is the uploads acknowledged in WindowSeconds from Start seconds
// after the uploads began.
type Window struct {
	Start   float64 `json:"start"`
	Uploads int     `json:"uploads"`
	// Records are the records of the uploads acknowledged in the window.
	Records int64   `json:"records"`
	P50ms   float64 `json:"p50ms"`
	P99ms   float64 `json:"p99ms"`
	Maxms   float64 `json:"maxms"`
	// Host and PG are what was sampled in the window (nil: nothing).
	Host *HostWindow `json:"host,omitempty"`
	PG   *PGWindow   `json:"pg,omitempty"`
}

// WindowSeconds is the length of a Report's Windows.
const WindowSeconds = 10

// FeedChange is one tag change's delivery to the held polls.
type FeedChange struct {
	Sequence     int64   `json:"sequence"`
	Polls        int     `json:"polls"`
	Delivered    int     `json:"delivered"`
	P50ms        float64 `json:"p50ms"`
	P95ms        float64 `json:"p95ms"`
	P99ms        float64 `json:"p99ms"`
	P100ms       float64 `json:"p100ms"`
	BytesSent    int64   `json:"bytesSent"` // console → pollers during the change, TLS included
	BytesPerPoll float64 `json:"bytesPerPoll"`
}

// Check is the exactly-once check.
type Check struct {
	Devices                int    `json:"devices"`
	SentTransactions       int64  `json:"sentTransactions"`
	CountedTransactions    int64  `json:"countedTransactions"`
	SentBytesReceived      int64  `json:"sentBytesReceived"`
	CountedBytesReceived   int64  `json:"countedBytesReceived"`
	DevicesWithDifferences int    `json:"devicesWithDifferences"`
	FirstDifference        string `json:"firstDifference,omitempty"`
	OK                     bool   `json:"ok"`
}

type device struct {
	id, token string
	base      string // the console (replica) it talks to
	// templates: [0] small, [1] full
	small, full chunk
	mu          sync.Mutex
	acked       Sent
	n           int
}

// Run plays the fleet and returns what it measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	rep := &Report{Devices: cfg.Devices}
	src := newSources(cfg.Sources)
	var ctlCount, pollCount, upCount counter
	ctl := newTransport(src, cfg.Fingerprint, 64, &ctlCount)
	defer ctl.CloseIdleConnections()
	adm, err := newAdmin(ctx, cfg.Console, ctl, cfg.AdminName, cfg.AdminPassword)
	if err != nil {
		return nil, err
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := adm.call(ctx, "POST", "/api/enrollment-keys", map[string]any{"name": "loadtest"}, &key); err != nil {
		return nil, fmt.Errorf("loadtest: enrollment key: %w", err)
	}
	consoles := append([]string{cfg.Console}, cfg.Replicas...)
	sampler := startSampler(append([]int{cfg.PID}, cfg.ReplicaPIDs...)...)
	sampler.db = cfg.DatabasePID

	// Enrollment.
	run := strconv.FormatInt(cfg.Now().Unix(), 36)
	devs := make([]*device, cfg.Devices)
	t0 := time.Now()
	enrollHC := &http.Client{Transport: ctl, Timeout: time.Minute}
	var ferr error
	var ferrOnce sync.Once
	parallel(cfg.EnrollConcurrency, cfg.Devices, func(i int) {
		d := &device{id: fmt.Sprintf("lt-%s-%05d", run, i), base: consoles[i%len(consoles)]}
		tok, err := enroll(ctx, enrollHC, d.base, key.Key, d.id)
		if err != nil {
			ferrOnce.Do(func() { ferr = err })
			return
		}
		d.token = tok
		devs[i] = d
	})
	if ferr != nil {
		return nil, fmt.Errorf("loadtest: enroll: %w", ferr)
	}
	rep.EnrollSeconds = time.Since(t0).Seconds()
	cfg.Log.Info("devices enrolled", "devices", cfg.Devices, "seconds", rep.EnrollSeconds)

	// Chunk templates, made before the clock starts.
	now := cfg.Now()
	upDevs := devs[:cfg.Uploaders]
	var genErr error
	var genOnce sync.Once
	parallel(4, len(upDevs), func(i int) {
		d := upDevs[i]
		r := newRand(uint64(i))
		var err error
		if d.small, err = makeChunk(r, cfg.Names, d.id, cfg.SmallRecords, now); err == nil {
			d.full, err = makeChunk(r, cfg.Names, d.id, cfg.FullRecords, now)
		}
		if err != nil {
			genOnce.Do(func() { genErr = err })
		}
	})
	if genErr != nil {
		return nil, genErr
	}

	// Long polls.
	pctx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	fd := &feedWatch{}
	var pwg sync.WaitGroup
	var procs *pollers
	defer func() { _ = procs.stop() }()
	rep.PollerProcs = 1
	if cfg.Polls > 0 {
		var st feedStatus
		if err := adm.call(ctx, "GET", "/api/feed", nil, &st); err != nil {
			return nil, err
		}
		t1 := time.Now()
		if cfg.Procs > 1 {
			wd := make([]WorkerDevice, cfg.Polls)
			for i, d := range devs[:cfg.Polls] {
				wd[i] = WorkerDevice{ID: d.id, Token: d.token, Console: i % len(consoles)}
			}
			// The uploads and the admin API keep the first addresses.
			spec := WorkerSpec{Consoles: consoles, Fingerprint: cfg.Fingerprint, ETag: st.Version, SourceBase: cfg.Sources, Sources: cfg.Sources}
			if procs, err = startPollers(cfg.Worker, cfg.Procs, spec, wd, fd.arrive, &pollCount); err != nil {
				return nil, err
			}
			rep.PollerProcs = cfg.Procs
		} else {
			pollTr := newTransport(src, cfg.Fingerprint, cfg.Polls+16, &pollCount)
			defer pollTr.CloseIdleConnections()
			hc := &http.Client{Transport: pollTr}
			version := st.Version
			for _, d := range devs[:cfg.Polls] {
				pwg.Add(1)
				go func() { defer pwg.Done(); poll(pctx, hc, d.base, d.token, version, fd.arrive) }()
			}
		}
		// Wait until the consoles hold them all.
		for deadline := time.Now().Add(5 * time.Minute); ; {
			held, err := heldPolls(ctx, adm, consoles)
			if err != nil {
				return nil, err
			}
			rep.HeldPolls, rep.HeldPerConsole = 0, held
			for _, n := range held {
				rep.HeldPolls += n
			}
			if rep.HeldPolls >= cfg.Polls || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		rep.PollsHeldAfter = time.Since(t1).Seconds()
		cfg.Log.Info("long polls held", "polls", rep.HeldPolls, "seconds", rep.PollsHeldAfter)
	}

	// Uploads, with feed changes spread over the run.
	upTr := newTransport(src, cfg.Fingerprint, cfg.Uploaders+16, &upCount)
	defer upTr.CloseIdleConnections()
	up := &uploads{cfg: &cfg, hc: &http.Client{Transport: upTr, Timeout: 5 * time.Minute}, start: time.Now()}
	if cfg.Rate > 0 {
		up.bucket = newBucket(cfg.Rate)
	}
	if cfg.Measuring != nil {
		cfg.Measuring(ctx)
	}
	sampler.mark()
	start := time.Now()
	up.start = start
	var pgp *pgProbe
	if cfg.DatabaseDSN != "" {
		if pgp, err = newPGProbe(ctx, cfg.DatabaseDSN); err != nil {
			cfg.Log.Warn("PostgreSQL not sampled per window", "err", err)
		}
	}
	prb := newProbe(start, WindowSeconds*time.Second, cfg.ProbeInterval, pgp, func(err error) {
		cfg.Log.Warn("PostgreSQL sample failed; the windows count failed samples", "err", err)
	})
	prb.consoles, prb.db = sampler.pids, sampler.db
	prb.run(ctx)
	defer prb.stop()
	uctx, stopUploads := context.WithTimeout(ctx, cfg.Duration)
	defer stopUploads()
	var uwg sync.WaitGroup
	for i, d := range upDevs {
		uwg.Add(1)
		go func() { defer uwg.Done(); up.device(uctx, ctx, d, i) }()
	}
	if cfg.Polls > 0 && cfg.FeedChanges > 0 {
		apps := []string{"dropbox", "mega", "onedrive", "telegram", "tiktok", "zoom", "discord"}
		for i := range cfg.FeedChanges {
			wait := cfg.Duration / time.Duration(cfg.FeedChanges+1)
			select {
			case <-uctx.Done():
			case <-time.After(wait):
			}
			if ctx.Err() != nil {
				break
			}
			// A different app each time, so every change makes a sequence.
			tag := []string{"Unsanctioned", "Monitored"}[i%2]
			var profiled chan error
			if i == 0 && cfg.Pprof != "" && cfg.FeedProfile != "" {
				profiled = make(chan error, 1)
				go func() {
					profiled <- fetchProfile(ctx, cfg.Pprof+"profile?seconds="+strconv.Itoa(max(cfg.ProfileSeconds, 1)), cfg.FeedProfile+".cpu.pprof")
				}()
				time.Sleep(200 * time.Millisecond) // the profile has started
			}
			ch, err := fd.change(ctx, adm, apps[i%len(apps)], tag, cfg.Polls, cfg.FeedTimeout, &pollCount)
			if profiled != nil {
				perr := errors.Join(<-profiled, fetchProfile(ctx, cfg.Pprof+"heap", cfg.FeedProfile+".heap.pprof"))
				if perr != nil {
					cfg.Log.Warn("feed fan-out profile", "err", perr)
				}
			}
			if err != nil {
				cfg.Log.Error("feed change failed", "err", err)
				continue
			}
			rep.Feed = append(rep.Feed, ch)
			cfg.Log.Info("feed change delivered", "sequence", ch.Sequence, "delivered", ch.Delivered, "p95ms", ch.P95ms, "p100ms", ch.P100ms)
		}
	}
	uwg.Wait()
	prb.stop()
	rep.Seconds = up.activeSeconds(start)
	// The console folds the fleet-wide rollups' pending rows in the
	// background, every 1 to 5 s (PostgreSQL): what is still pending when
	// the uploads end is folded by the next view, here, so that its CPU
	// is counted with the records that made it whatever the interval.
	if err := adm.call(ctx, "GET", "/api/discovery/apps?limit=1", nil, nil); err != nil {
		cfg.Log.Warn("the view that folds the pending rollups failed; their CPU is not counted", "err", err)
	}
	if db, ok := sampler.dbCPU(); ok {
		rep.Database = &db
	}
	stats := sampler.stop()
	rep.Console, rep.Replicas = stats[0], stats[1:]
	stopPolls()
	pwg.Wait()
	if err := procs.stop(); err != nil {
		cfg.Log.Warn("poller processes", "err", err)
	}
	procs = nil

	rep.Chunks, rep.Records, rep.UploadBytes = up.chunks.Load(), up.records.Load(), up.bytes.Load()
	if rep.Seconds > 0 {
		rep.ChunksPerSec, rep.RecordsPerSec = float64(rep.Chunks)/rep.Seconds, float64(rep.Records)/rep.Seconds
	}
	if rep.Records > 0 {
		var cpu float64
		for _, c := range stats {
			cpu += c.CPUSeconds
		}
		rep.ConsoleCPUPerRecordUs = cpu / float64(rep.Records) * 1e6
		if rep.Database != nil {
			rep.DatabaseCPUPerRecordUs = rep.Database.CPUSeconds / float64(rep.Records) * 1e6
		}
	}
	samples := up.samples()
	rep.UploadP50ms, rep.UploadP99ms, rep.UploadMaxms, rep.SmallP99ms, rep.FullP99ms, rep.Windows = summarize(samples)
	prb.join(rep.Windows)
	rep.Contrasts = contrasts(samples, rep.Windows, WindowSeconds)
	rep.Busy, rep.Errors, rep.Unacknowledged = up.busy.Load(), up.errs.Load(), up.unacked.Load()
	rep.FirstErrors = up.firstErrors()

	c, err := check(ctx, adm, upDevs, now)
	if err != nil {
		return rep, err
	}
	rep.Check = c
	return rep, nil
}

// parallel runs f(0..n-1) on k goroutines.
func parallel(k, n int, f func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(k, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

func enroll(ctx context.Context, hc *http.Client, base, key, id string) (string, error) {
	b, _ := json.Marshal(map[string]string{"key": key, "deviceId": id, "deviceName": id})
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/enroll", bytesReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			if attempt < 5 && ctx.Err() == nil {
				time.Sleep(time.Second)
				continue
			}
			return "", err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if (resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests) && attempt < 20 {
			time.Sleep(time.Second)
			continue
		}
		if resp.StatusCode/100 != 2 {
			return "", fmt.Errorf("%s: %s", resp.Status, body)
		}
		var out struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(body, &out); err != nil || out.Token == "" {
			return "", fmt.Errorf("enroll answer without a token: %s", body)
		}
		return out.Token, nil
	}
}

type feedStatus struct {
	Sequence  int64  `json:"sequence"`
	Version   string `json:"version"`
	HeldPolls int    `json:"heldPolls"`
}

// feedWatch follows the versions the pollers receive.
type feedWatch struct {
	mu sync.Mutex
	// recording: arrivals of 200s are kept, with their version, while a
	// change is measured.
	recording bool
	arrivals  []arrival
}

type arrival struct {
	version string
	at      time.Time
}

// heldPolls asks every console how many polls it holds.
func heldPolls(ctx context.Context, adm *admin, consoles []string) ([]int, error) {
	held := make([]int, len(consoles))
	for i, base := range consoles {
		var st feedStatus
		if err := adm.callAt(ctx, base, "GET", "/api/feed", nil, &st); err != nil {
			return nil, err
		}
		held[i] = st.HeldPolls
	}
	return held, nil
}

// arrive records a 200 answer's version while a change is measured.
func (f *feedWatch) arrive(version string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recording {
		f.arrivals = append(f.arrivals, arrival{version, at})
	}
}

// poll holds one device's long poll on base until ctx ends, calling
// arrived with every new version it receives.
func poll(ctx context.Context, hc *http.Client, base, token, etag string, arrived func(version string, at time.Time)) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/indicators?wait=300", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept-Encoding", "gzip")
		req.Header.Set("If-None-Match", `"`+etag+`"`)
		req.Header.Set("Netward-Agent", "version=loadtest; os=linux/loadtest; seq=0")
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				time.Sleep(time.Second + rand.N(time.Second))
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		at := time.Now()
		switch resp.StatusCode {
		case http.StatusOK:
			v, _ := strconv.Unquote(resp.Header.Get("ETag"))
			etag = v
			arrived(v, at)
		case http.StatusNotModified:
		default:
			time.Sleep(time.Second + rand.N(time.Second))
		}
	}
}

// change tags an app and measures until every poll has the new version.
func (f *feedWatch) change(ctx context.Context, adm *admin, app, tag string, polls int, timeout time.Duration, cnt *counter) (FeedChange, error) {
	f.mu.Lock()
	f.recording, f.arrivals = true, nil
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.recording, f.arrivals = false, nil
		f.mu.Unlock()
	}()
	read0 := cnt.read.Load()
	t0 := time.Now()
	if err := adm.call(ctx, "PUT", "/api/apps/"+url.PathEscape(app)+"/tag", map[string]string{"tag": tag}, nil); err != nil {
		return FeedChange{}, err
	}
	var st feedStatus
	if err := adm.call(ctx, "GET", "/api/feed", nil, &st); err != nil {
		return FeedChange{}, err
	}
	count := func() []float64 {
		f.mu.Lock()
		defer f.mu.Unlock()
		var ms []float64
		for _, a := range f.arrivals {
			if a.version == st.Version {
				ms = append(ms, float64(a.at.Sub(t0).Microseconds())/1000)
			}
		}
		return ms
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil && len(count()) < polls {
		time.Sleep(20 * time.Millisecond)
	}
	ms := count()
	slices.Sort(ms)
	ch := FeedChange{Sequence: st.Sequence, Polls: polls, Delivered: len(ms), BytesSent: cnt.read.Load() - read0}
	ch.P50ms, ch.P95ms, ch.P99ms = pctOf(ms, polls, 50), pctOf(ms, polls, 95), pctOf(ms, polls, 99)
	ch.P100ms = pctOf(ms, polls, 100)
	if len(ms) > 0 {
		ch.BytesPerPoll = float64(ch.BytesSent) / float64(len(ms))
	}
	return ch, nil
}

// pctOf is the p-th percentile of the first arrivals among total polls
// (-1 when fewer than that share arrived).
func pctOf(sorted []float64, total int, p float64) float64 {
	need := int(float64(total)*p/100 + 0.999999)
	if need < 1 {
		need = 1
	}
	if need > len(sorted) {
		return -1
	}
	return sorted[need-1]
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return pctOf(sorted, len(sorted), p)
}

// uploads runs the uploaders.
type uploads struct {
	cfg    *Config
	hc     *http.Client
	bucket *bucket

	chunks, records, bytes, busy, errs, unacked atomic.Int64
	start                                       time.Time // of the uploads, for the samples' times
	mu                                          sync.Mutex
	lat                                         []sample
	errList                                     []string
	lastDone                                    atomic.Int64
}

func (u *uploads) activeSeconds(start time.Time) float64 {
	end := time.Unix(0, u.lastDone.Load())
	if end.Before(start) {
		return 0
	}
	return end.Sub(start).Seconds()
}

// sample is one acknowledged upload: its latency, when it was
// acknowledged (seconds after the uploads began) and its kind.
type sample struct {
	ms, at  float64
	full    bool
	records int64
}

func (u *uploads) samples() []sample {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.lat)
}

// summarize returns the percentiles of all uploads, the p99 of each kind
// and the per-window figures.
func summarize(s []sample) (p50, p99, pmax, smallP99, fullP99 float64, windows []Window) {
	var all, small, full []float64
	byWindow := map[int][]float64{}
	records := map[int]int64{}
	last := -1
	for _, x := range s {
		all = append(all, x.ms)
		if x.full {
			full = append(full, x.ms)
		} else {
			small = append(small, x.ms)
		}
		w := max(int(x.at/WindowSeconds), 0)
		byWindow[w] = append(byWindow[w], x.ms)
		records[w] += x.records
		last = max(last, w)
	}
	for _, l := range [][]float64{all, small, full} {
		slices.Sort(l)
	}
	for w := 0; w <= last; w++ {
		l := byWindow[w]
		slices.Sort(l)
		windows = append(windows, Window{Start: float64(w * WindowSeconds), Uploads: len(l), Records: records[w], P50ms: pct(l, 50), P99ms: pct(l, 99), Maxms: pct(l, 100)})
	}
	return pct(all, 50), pct(all, 99), pct(all, 100), pct(small, 99), pct(full, 99), windows
}

func (u *uploads) firstErrors() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.errList)
}

func (u *uploads) fail(msg string) {
	u.errs.Add(1)
	u.mu.Lock()
	if len(u.errList) < 10 {
		u.errList = append(u.errList, msg)
	}
	u.mu.Unlock()
}

// device uploads d's chunks until run ends; a chunk started is retried
// (same id) until acknowledged or the outer ctx ends, so the check knows
// exactly what the console took.
func (u *uploads) device(run, ctx context.Context, d *device, i int) {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	// Start staggered, as a fleet does.
	select {
	case <-run.Done():
		return
	case <-time.After(rand.N(time.Second)):
	}
	for run.Err() == nil {
		c, full := d.small, r.IntN(u.cfg.FullEvery) == 0
		if full {
			c = d.full
		}
		if u.bucket != nil && !u.bucket.take(run, c.sent.Records) {
			return
		}
		d.n++
		id := fmt.Sprintf("c%06d", d.n)
		// A chunk started is finished even past the run's end (bounded).
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		ok := u.put(cctx, d, id, c, full)
		cancel()
		if !ok {
			u.unacked.Add(1)
		}
	}
}

func (u *uploads) put(ctx context.Context, d *device, id string, c chunk, full bool) bool {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "PUT", d.base+"/v1/telemetry/"+d.id+"/"+id, bytesReader(c.gz))
		req.Header.Set("Authorization", "Bearer "+d.token)
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Content-Type", "application/x-ndjson")
		t := time.Now()
		resp, err := u.hc.Do(req)
		if err != nil {
			u.fail(err.Error())
			sleep(ctx, time.Second)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		el := time.Since(t)
		switch {
		case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
			d.mu.Lock()
			d.acked.Add(c.sent)
			d.mu.Unlock()
			u.chunks.Add(1)
			u.records.Add(c.sent.Records)
			u.bytes.Add(int64(len(c.gz)))
			u.lastDone.Store(time.Now().UnixNano())
			u.mu.Lock()
			u.lat = append(u.lat, sample{ms: float64(el.Microseconds()) / 1000, at: time.Since(u.start).Seconds(), full: full, records: c.sent.Records})
			u.mu.Unlock()
			return true
		case resp.StatusCode == http.StatusServiceUnavailable:
			u.busy.Add(1)
			// The agent honours Retry-After; the simulator caps it at 5 s so a
			// short run still measures (docs/scale.md).
			ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			sleep(ctx, min(time.Duration(ra)*time.Second, 5*time.Second))
		default:
			u.fail(fmt.Sprintf("%s: %s", resp.Status, body))
			sleep(ctx, time.Second)
		}
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// bucket paces the records offered.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rate int) *bucket {
	return &bucket{rate: float64(rate), tokens: float64(rate) / 10, last: time.Now()}
}

func (b *bucket) take(ctx context.Context, n int64) bool {
	for {
		b.mu.Lock()
		now := time.Now()
		b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*b.rate, b.rate)
		b.last = now
		if b.tokens >= float64(n) {
			b.tokens -= float64(n)
			b.mu.Unlock()
			return true
		}
		wait := time.Duration((float64(n) - b.tokens) / b.rate * float64(time.Second))
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// check reads every uploading device's aggregates back.
func check(ctx context.Context, adm *admin, devs []*device, now time.Time) (Check, error) {
	c := Check{Devices: len(devs)}
	from := now.Add(-3 * time.Hour).UTC().Format(time.RFC3339)
	to := now.Add(3 * time.Hour).UTC().Format(time.RFC3339)
	var mu sync.Mutex
	var ferr error
	parallel(8, len(devs), func(i int) {
		d := devs[i]
		var out struct {
			Total struct {
				Transactions  int64 `json:"transactions"`
				BytesReceived int64 `json:"bytesReceived"`
			} `json:"total"`
		}
		err := adm.call(ctx, "GET", "/api/devices/"+d.id+"/traffic?from="+url.QueryEscape(from)+"&to="+url.QueryEscape(to), nil, &out)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			ferr = errors.Join(ferr, err)
			return
		}
		c.SentTransactions += d.acked.Transactions
		c.CountedTransactions += out.Total.Transactions
		c.SentBytesReceived += d.acked.BytesReceived
		c.CountedBytesReceived += out.Total.BytesReceived
		if out.Total.Transactions != d.acked.Transactions || out.Total.BytesReceived != d.acked.BytesReceived {
			c.DevicesWithDifferences++
			if c.FirstDifference == "" {
				c.FirstDifference = fmt.Sprintf("%s: sent %d transactions / %d bytes received, counted %d / %d", d.id,
					d.acked.Transactions, d.acked.BytesReceived, out.Total.Transactions, out.Total.BytesReceived)
			}
		}
	})
	c.OK = ferr == nil && c.DevicesWithDifferences == 0
	return c, ferr
}

// fetchProfile writes the profile at url to file.
func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}
