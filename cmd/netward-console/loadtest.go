package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/netward/netward/console/loadtest"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/internal/pgtest"
)

// loadtestMain plays a fleet against a console (docs/scale.md): one it
// starts itself (--store sqlite|postgres: a private PostgreSQL cluster with
// production durability, the console as a child process of this binary) or
// a running one (--console URL --password PW [--fingerprint FP] [--pid PID]).
func loadtestMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	consoleURL := fs.String("console", "", "a running console's URL (default: start one)")
	password := fs.String("password", "", "the admin password of a running console")
	fingerprint := fs.String("fingerprint", "", "SHA-256 fingerprint of a running console's certificate")
	pid := fs.Int("pid", 0, "a running console's process id (for its RSS and CPU)")
	storeKind := fs.String("store", "postgres", "store of the console started here: postgres or sqlite")
	devices := fs.Int("devices", 1000, "devices to enroll")
	polls := fs.Int("polls", 1000, "devices holding a long poll")
	uploaders := fs.Int("uploaders", 200, "devices uploading chunks (one at a time each)")
	duration := fs.Duration("duration", 30*time.Second, "how long uploads run")
	rate := fs.Int("rate", 0, "records/s offered (0: as fast as the console takes them)")
	fullEvery := fs.Int("full-every", 4, "one upload in this many is a full 4,000-record chunk; the others are small hourly ones")
	small := fs.Int("small-records", 150, "records in a small chunk")
	changes := fs.Int("feed-changes", 2, "app tag changes during the run, each measured until every poll has it")
	data := fs.String("data", "../shared/data", "directory with blocklist-stevenblack.txt and app-catalog-v2fly.json")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	keep := fs.String("keep", "", "keep the started console's data directory here (default: a removed temporary one)")
	profile := fs.String("cpuprofile", "", "CPU profile of the console started here, written to this file")
	binary := fs.String("console-binary", "", "start this netward-console binary instead of this one (A/B runs against a baseline build)")
	replicas := fs.Int("replicas", 1, "console replicas to start on one PostgreSQL (polls, uploads and enrollment spread over them)")
	feedProfile := fs.String("feed-profile", "", "profile the first console during the first feed change: PREFIX.cpu.pprof and PREFIX.heap.pprof")
	procs := fs.Int("procs", 0, "child processes holding the long polls (0: one per 10,000 polls; 1: this process)")
	storeConns := fs.Int("store-conns", 0, "store.maxConns of the consoles started here: their PostgreSQL connections at most (0: the console's default, 16)")
	pgStatements := fs.Bool("pg-statements", false, "print PostgreSQL's busiest statements over the uploads (pg_stat_statements, loaded into the PostgreSQL started here; it costs the server some CPU)")
	var pgSettings []string
	fs.Func("pg-setting", "a server setting NAME=VALUE for the PostgreSQL started here (repeatable; e.g. wal_compression=lz4): A/B runs of its tuning", func(v string) error {
		name, _, ok := strings.Cut(v, "=")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return fmt.Errorf("%q: give NAME=VALUE, as in postgresql.conf", v)
		}
		pgSettings = append(pgSettings, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(pgSettings) > 0 && (*consoleURL != "" || *storeKind != "postgres") {
		fmt.Fprintln(stderr, "netward-console loadtest: --pg-setting sets the PostgreSQL this command starts (--store postgres without --console)")
		return 2
	}
	log := newLogger(stderr, "info")
	names, err := loadtest.LoadNames(existing(filepath.Join(*data, "blocklist-stevenblack.txt")), existing(filepath.Join(*data, "app-catalog-v2fly.json")))
	if err != nil {
		fmt.Fprintf(stderr, "netward-console loadtest: %v\n", err)
		return 1
	}
	if len(names.Blocklist) == 0 {
		log.Warn("shared blocklist not found; names come from the catalog or are made up", "data", *data)
	}
	if *procs <= 0 {
		*procs = (*polls + 9999) / 10000
	}
	// Held polls are one descriptor each, on both sides; past the hard
	// limit they go to more poller processes (--procs).
	if err := loadtest.RaiseFileLimit(uint64(*polls/max(*procs, 1)) + 4096); err != nil {
		log.Warn("could not raise the open-file limit; use more --procs", "err", err)
	}
	cfg := loadtest.Config{Console: *consoleURL, Fingerprint: *fingerprint, AdminPassword: *password, PID: *pid,
		Devices: *devices, Polls: *polls, Uploaders: *uploaders, Duration: *duration, Rate: *rate, FullEvery: *fullEvery,
		SmallRecords: *small, FeedChanges: *changes, Names: names, Log: log, Procs: *procs, Worker: workerCommand(stderr), FeedProfile: *feedProfile}
	var db startedDB
	if cfg.Console == "" {
		stop, err := startConsoles(ctx, &cfg, &db, consoleOptions{store: *storeKind, keep: *keep, profile: *profile, binary: *binary,
			polls: *polls, replicas: *replicas, pprof: *feedProfile != "", pgStatements: *pgStatements, pgSettings: pgSettings, storeConns: *storeConns}, log)
		if err != nil {
			fmt.Fprintf(stderr, "netward-console loadtest: %v\n", err)
			return 1
		}
		defer stop()
	} else if *pgStatements {
		db.statementsOff = "--pg-statements reads the PostgreSQL this command starts (--store postgres without --console); " +
			"for a running console, query pg_stat_statements on its database yourself"
	}
	dsn := db.dsn
	// The write-ahead log's counters around the uploads, of the
	// PostgreSQL started here (a running console's server has other work).
	var walBefore, walAfter walStats
	walOn := *storeKind == "postgres" && *consoleURL == ""
	if walOn {
		prev := cfg.Measuring
		cfg.Measuring = func(ctx context.Context) {
			if prev != nil {
				prev(ctx)
			}
			var werr error
			if walBefore, werr = readWAL(ctx, dsn); werr != nil {
				log.Warn("PostgreSQL's WAL counters not read; the report leaves them out", "err", werr)
				walBefore = walStats{}
			}
		}
	}
	if walOn {
		// Sampled per window: checkpoints, WAL, vacuums, wait events.
		cfg.DatabaseDSN = dsn
	}
	rep, err := loadtest.Run(ctx, cfg)
	if walOn && !walBefore.at.IsZero() {
		var werr error
		if walAfter, werr = readWAL(ctx, dsn); werr != nil {
			log.Warn("PostgreSQL's WAL counters not read; the report leaves them out", "err", werr)
			walAfter = walStats{}
		}
	}
	if rep != nil {
		printReport(stdout, rep, cfg)
		printWAL(stdout, walBefore, walAfter, rep.Records)
		if dsn != "" {
			printSizes(ctx, stdout, dsn)
		}
		if *pgStatements {
			printStatements(ctx, stdout, db)
		}
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); werr != nil {
				fmt.Fprintf(stderr, "netward-console loadtest: %v\n", werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "netward-console loadtest: %v\n", err)
		return 1
	}
	if !rep.Check.OK {
		fmt.Fprintln(stderr, "netward-console loadtest: the aggregates do not match what was acknowledged")
		return 1
	}
	return 0
}

func existing(p string) string {
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// consoleOptions say which consoles startConsoles starts.
type consoleOptions struct {
	store, keep, profile, binary string
	polls, replicas              int
	pprof                        bool // serve --pprof on the first
	pgStatements                 bool // load pg_stat_statements
	pgSettings                   []string
	storeConns                   int // store.maxConns (0: the default)
}

// storeConf is a started console's "store" key; maxConns only when asked
// for, so a --console-binary from before the key still reads it.
func storeConf(dsn string, conns int) map[string]any {
	c := map[string]any{"dsn": dsn}
	if conns > 0 {
		c["maxConns"] = conns
	}
	return c
}

// startedDB is the database startConsoles made: its DSN, and whether
// pg_stat_statements is on in it (statementsOff says why not).
type startedDB struct {
	dsn           string
	statements    bool
	statementsOff string
}

// startConsoles starts a PostgreSQL cluster (for --store postgres) and
// this binary's `serve` on a fresh data directory — o.replicas of them on
// the one database, the later ones with the first one's certificate —
// and fills cfg with their addresses, fingerprint, admin password and pids.
func startConsoles(ctx context.Context, cfg *loadtest.Config, db *startedDB, o consoleOptions, log *slog.Logger) (stop func(), err error) {
	var cleanups []func()
	stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	o.replicas = max(o.replicas, 1)
	if o.replicas > 1 && o.store != "postgres" {
		return stop, fmt.Errorf("--replicas %d needs --store postgres (replicas share one PostgreSQL)", o.replicas)
	}
	dir := o.keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "netward-loadtest-"); err != nil {
			return stop, err
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	} else if err = os.MkdirAll(dir, 0o700); err != nil {
		return stop, err
	}
	dsn := "sqlite:" + filepath.Join(dir, "console.db")
	if o.store == "postgres" {
		settings := append([]string{"shared_buffers=256MB", "max_wal_size=4GB"}, o.pgSettings...)
		if o.pgStatements {
			if pgtest.HasLibrary("pg_stat_statements") {
				settings = append(settings, "shared_preload_libraries=pg_stat_statements")
			} else {
				db.statementsOff = "pg_stat_statements is not installed with this PostgreSQL (its contrib library pg_stat_statements.so; " +
					"Debian ships it in the postgresql-NN package, elsewhere install postgresql-contrib)"
			}
		}
		pg, err := pgtest.StartWith(pgtest.Options{Durable: true, Settings: settings})
		if err != nil {
			return stop, fmt.Errorf("PostgreSQL: %w", err)
		}
		cleanups = append(cleanups, pg.Stop)
		if dsn, err = pg.NewDatabase("loadtest"); err != nil {
			return stop, err
		}
		// Its CPU, backends included, is reported beside the console's.
		cfg.DatabasePID = pg.PID()
		if o.pgStatements && db.statementsOff == "" {
			if err := enableStatements(ctx, dsn); err != nil {
				db.statementsOff = err.Error()
			} else {
				db.statements = true
				cfg.Measuring = func(ctx context.Context) { resetStatements(ctx, dsn, log) }
			}
		}
	} else if o.store != "sqlite" {
		return stop, fmt.Errorf("--store %q: use postgres or sqlite", o.store)
	} else if o.pgStatements {
		db.statementsOff = "--pg-statements needs --store postgres"
	}
	db.dsn = dsn
	exe, err := os.Executable()
	if o.binary != "" {
		exe, err = o.binary, nil
	}
	if err != nil {
		return stop, err
	}
	for r := range o.replicas {
		name := "data"
		conf := map[string]any{
			"version": 1, "listen": "127.0.0.1:0", "store": storeConf(dsn, o.storeConns),
			"feed":   map[string]any{"maxHeldPolls": o.polls + 1000},
			"ingest": map[string]any{"retryAfterSeconds": 5},
			"log":    map[string]string{"level": "warn"},
		}
		if r > 0 {
			// One certificate for all, as behind one load balancer name.
			name = fmt.Sprintf("data-%d", r)
			tlsDir := filepath.Join(dir, "data", "tls")
			conf["tls"] = map[string]string{"certFile": filepath.Join(tlsDir, "cert.pem"), "keyFile": filepath.Join(tlsDir, "key.pem")}
		}
		conf["dataDir"] = filepath.Join(dir, name)
		var extra []string
		if r == 0 && o.profile != "" {
			p, err := filepath.Abs(o.profile)
			if err != nil {
				return stop, err
			}
			extra = append(extra, "--cpuprofile", p)
		}
		if r == 0 && o.pprof {
			extra = append(extra, "--pprof", "127.0.0.1:0")
		}
		c, stopOne, err := startServe(exe, filepath.Join(dir, fmt.Sprintf("console-%d", r)), conf, extra, r == 0)
		cleanups = append(cleanups, stopOne)
		if err != nil {
			return stop, err
		}
		if r == 0 {
			cfg.Console, cfg.Fingerprint, cfg.AdminPassword, cfg.PID, cfg.Pprof = c.url, c.fingerprint, c.password, c.pid, c.pprof
		} else {
			cfg.Replicas, cfg.ReplicaPIDs = append(cfg.Replicas, c.url), append(cfg.ReplicaPIDs, c.pid)
		}
		log.Info("console started", "replica", r, "url", c.url, "pid", c.pid, "store", o.store, "dir", dir)
	}
	_ = ctx
	return stop, nil
}

// started is one console process's address, fingerprint, password and pid.
type started struct {
	url, fingerprint, password, pprof string
	pid                               int
}

// startServe starts `exe serve` with conf (written to base.json; its log
// to base.log) and reads what it prints until it serves; first: it is the
// first on its store and prints the admin password.
func startServe(exe, base string, conf map[string]any, extra []string, first bool) (c started, stop func(), err error) {
	stop = func() {}
	b, _ := json.Marshal(conf)
	if err = os.WriteFile(base+".json", b, 0o600); err != nil {
		return c, stop, err
	}
	logf, err := os.Create(base + ".log")
	if err != nil {
		return c, stop, err
	}
	cmd := exec.Command(exe, append([]string{"serve", "--config", base + ".json"}, extra...)...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return c, stop, err
	}
	if err = cmd.Start(); err != nil {
		return c, stop, err
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	c.pid = cmd.Process.Pid
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "netward-console serving "):
			c.url = strings.TrimPrefix(line, "netward-console serving ")
		case strings.HasPrefix(line, "certificate SHA-256 fingerprint"):
			c.fingerprint = strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:])
		case strings.HasPrefix(line, "initial admin account"):
			c.password = strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:])
		case strings.HasPrefix(line, "profiles on "):
			c.pprof = strings.TrimPrefix(line, "profiles on ")
		}
		// The password follows the feed's public key, on the store's first
		// start only.
		if c.url != "" && (c.password != "" || !first && strings.HasPrefix(line, "feed public key")) {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if c.url == "" || first && c.password == "" {
		return c, stop, fmt.Errorf("the console did not start; see %s.log (keep it with --keep DIR)", base)
	}
	return c, stop, nil
}

// workerCommand starts `netward-console loadtest-worker` (this binary), a
// poller process of the simulator.
func workerCommand(stderr io.Writer) func() *exec.Cmd {
	return func() *exec.Cmd {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		c := exec.Command(exe, "loadtest-worker")
		c.Stderr = stderr
		return c
	}
}

// loadtestWorkerMain is a poller process of `netward-console loadtest
// --procs N`: it holds the long polls its parent gives it on standard
// input and reports what they receive on standard output.
func loadtestWorkerMain(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) int {
	// Up to the hard limit, when it is lower: the parent sized each
	// process's share of the polls under it.
	_ = loadtest.RaiseFileLimit(1 << 20)
	if err := loadtest.Worker(ctx, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "netward-console loadtest-worker: %v\n", err)
		return 1
	}
	return 0
}

func printReport(w io.Writer, r *loadtest.Report, cfg loadtest.Config) {
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(w, "devices %d enrolled in %.1f s; %d long polls held (after %.1f s) by %d simulator process(es)", r.Devices, r.EnrollSeconds, r.HeldPolls, r.PollsHeldAfter, r.PollerProcs)
	if len(r.HeldPerConsole) > 1 {
		fmt.Fprintf(w, "; per replica %v", r.HeldPerConsole)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "uploads: %d uploaders, %.0f s: %d chunks (%.1f/s), %d records (%.0f/s), %.1f MB compressed\n",
		cfg.Uploaders, r.Seconds, r.Chunks, r.ChunksPerSec, r.Records, r.RecordsPerSec, mb(r.UploadBytes))
	fmt.Fprintf(w, "upload latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms; 503 busy %d, errors %d, unacknowledged chunks %d\n",
		r.UploadP50ms, r.UploadP99ms, r.UploadMaxms, r.Busy, r.Errors, r.Unacknowledged)
	fmt.Fprintf(w, "upload p99 by chunk: small %.1f ms, full %.1f ms\n", r.SmallP99ms, r.FullP99ms)
	printWindows(w, r)
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	for _, f := range r.Feed {
		fmt.Fprintf(w, "feed sequence %d to %d polls: delivered %d; p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, 100%% %.0f ms; %.1f MB sent (%.0f bytes per poll, TLS included)\n",
			f.Sequence, f.Polls, f.Delivered, f.P50ms, f.P95ms, f.P99ms, f.P100ms, mb(f.BytesSent), f.BytesPerPoll)
	}
	for i, c := range append([]loadtest.ProcStats{r.Console}, r.Replicas...) {
		fmt.Fprintf(w, "console %d: peak RSS %.0f MB, end RSS %.0f MB, CPU %.1f s (%.2f cores)\n", i, mb(c.PeakRSSBytes), mb(c.EndRSSBytes), c.CPUSeconds, c.CPUCores)
	}
	if d := r.Database; d != nil {
		fmt.Fprintf(w, "database (PostgreSQL, all its processes): CPU %.1f s (%.2f cores)\n", d.CPUSeconds, d.CPUCores)
	}
	if r.Records > 0 {
		fmt.Fprintf(w, "CPU per record: console %.1f µs", r.ConsoleCPUPerRecordUs)
		if r.Database != nil {
			fmt.Fprintf(w, ", database %.1f µs, together %.1f µs", r.DatabaseCPUPerRecordUs, r.ConsoleCPUPerRecordUs+r.DatabaseCPUPerRecordUs)
		}
		fmt.Fprintln(w)
	}
	c := r.Check
	fmt.Fprintf(w, "check: %d devices, transactions sent %d / counted %d, bytes received sent %d / counted %d: ", c.Devices, c.SentTransactions, c.CountedTransactions, c.SentBytesReceived, c.CountedBytesReceived)
	if c.OK {
		fmt.Fprintln(w, "OK (none lost, none counted twice)")
	} else {
		fmt.Fprintf(w, "MISMATCH on %d devices (%s)\n", c.DevicesWithDifferences, c.FirstDifference)
	}
}

// printWindows prints the slowest windows, each with what the host and
// PostgreSQL did in it, and how the p99 differs between the windows with
// a checkpoint or a vacuum and the others.
func printWindows(w io.Writer, r *loadtest.Report) {
	if len(r.Windows) <= 1 {
		return
	}
	fmt.Fprintf(w, "upload p99 per %d s window, the slowest %d of %d (--json has them all; s after the start: p99 ms):\n",
		loadtest.WindowSeconds, min(5, len(r.Windows)), len(r.Windows))
	for _, x := range slowestWindows(r.Windows, 5) {
		fmt.Fprintf(w, "  %.0f: %.0f ms (max %.0f ms, %d uploads", x.Start, x.P99ms, x.Maxms, x.Uploads)
		if n := windowNotes(x); n != "" {
			fmt.Fprintf(w, "; %s", n)
		}
		fmt.Fprintln(w, ")")
	}
	if len(r.Contrasts) > 0 {
		fmt.Fprint(w, "upload p99 in windows")
		for i, c := range r.Contrasts {
			if i > 0 {
				fmt.Fprint(w, ";")
			}
			fmt.Fprintf(w, " with a %s running %s vs without %s", c.What, windowsP99(c.Windows, c.Uploads, c.P99ms), windowsP99(c.OtherWindows, c.OtherUploads, c.OtherP99ms))
		}
		fmt.Fprintln(w)
	}
}

// windowsP99 is "640 ms (14 windows)", or "- (0 windows)" with no uploads.
func windowsP99(windows, uploads int, p99 float64) string {
	if uploads == 0 {
		return fmt.Sprintf("- (%d windows)", windows)
	}
	return fmt.Sprintf("%.0f ms (%d windows)", p99, windows)
}

// windowNotes says compactly what was sampled in a window: PostgreSQL's
// checkpoint, WAL, vacuums and active backends by wait class (mean per
// sample), then the host's CPU.
func windowNotes(x loadtest.Window) string {
	var n []string
	if p := x.PG; p != nil {
		if p.Samples == 0 {
			n = append(n, fmt.Sprintf("pg not sampled: %d samples failed", p.SampleErrors))
		} else {
			if p.CheckpointsStarted > 0 || p.CheckpointsDone > 0 || p.CheckpointSamples > 0 {
				c := "ckpt"
				if p.CheckpointsStarted > 0 {
					c += fmt.Sprintf(" %d started", p.CheckpointsStarted)
				}
				if p.CheckpointsDone > 0 {
					c += fmt.Sprintf(" %d done", p.CheckpointsDone)
				}
				if p.CheckpointsStarted == 0 && p.CheckpointsDone == 0 {
					c += " running"
				}
				c += fmt.Sprintf(" in %d/%d samples", p.CheckpointSamples, p.Samples)
				if p.CheckpointBuffers > 0 {
					c += ", " + kilo(float64(p.CheckpointBuffers)) + " buf written"
				}
				n = append(n, c)
			}
			n = append(n, fmt.Sprintf("fpi %s, wal %.0f MB", kilo(float64(p.WALFPI)), float64(p.WALBytes)/1e6))
			if len(p.VacuumTables) > 0 {
				n = append(n, "vac "+strings.Join(p.VacuumTables, "+"))
			}
			if len(p.AnalyzeTables) > 0 {
				n = append(n, "analyze "+strings.Join(p.AnalyzeTables, "+"))
			}
			s := float64(p.Samples)
			n = append(n, fmt.Sprintf("active cpu %.1f/io %.1f/lock %.1f/lwlock %.1f/other %.1f",
				float64(p.Waits.CPU)/s, float64(p.Waits.IO)/s, float64(p.Waits.Lock)/s, float64(p.Waits.LWLock)/s, float64(p.Waits.Other)/s))
			if p.SampleErrors > 0 {
				n = append(n, fmt.Sprintf("%d pg samples failed", p.SampleErrors))
			}
			if p.MaxSampleMs >= 100 {
				n = append(n, fmt.Sprintf("slowest pg sample %.0f ms", p.MaxSampleMs))
			}
		}
	}
	if h := x.Host; h != nil {
		n = append(n, fmt.Sprintf("cpu %.0f %%, iowait %.0f %%, steal %.0f %%, load %.1f", h.BusyPct, h.IOWaitPct, h.StealPct, h.Load1))
		if h.ConsoleCores > 0 || h.DatabaseCores > 0 {
			n = append(n, windowCores(h, x.Records))
		}
	}
	return strings.Join(n, ", ")
}

// windowCores says who took the CPU in a window: "console 0.71 + db 1.05
// + simulator 0.22 cores, 18.1 µs per record" (console and database; the
// database left out when it was not read).
func windowCores(h *loadtest.HostWindow, records int64) string {
	s := fmt.Sprintf("console %.2f", h.ConsoleCores)
	cores := h.ConsoleCores
	if h.DatabaseCores > 0 {
		s += fmt.Sprintf(" + db %.2f", h.DatabaseCores)
		cores += h.DatabaseCores
	}
	s += fmt.Sprintf(" + simulator %.2f cores", h.SimulatorCores)
	if records > 0 {
		s += fmt.Sprintf(", %.1f µs per record", cores*loadtest.WindowSeconds/float64(records)*1e6)
	}
	return s
}

// kilo writes a count compactly: 950, 12k, 3.4M.
func kilo(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// slowestWindows returns the n windows with the highest p99, slowest first.
func slowestWindows(ws []loadtest.Window, n int) []loadtest.Window {
	s := slices.Clone(ws)
	slices.SortStableFunc(s, func(a, b loadtest.Window) int { return cmp.Compare(b.P99ms, a.P99ms) })
	return s[:min(n, len(s))]
}

// printSizes prints the database's size and its aggregate rows, for the
// sizing arithmetic of docs/scale.md.
func printSizes(ctx context.Context, w io.Writer, dsn string) {
	st, err := store.Open(ctx, store.Config{DSN: dsn})
	if err != nil {
		fmt.Fprintf(w, "database size: %v\n", err)
		return
	}
	defer st.Close()
	sizes, err := st.TableSizes(ctx)
	if err != nil {
		fmt.Fprintf(w, "database size: %v\n", err)
	}
	rows, _ := st.AggregateRows(ctx)
	names := slices.Sorted(maps.Keys(sizes))
	for _, n := range names {
		fmt.Fprintf(w, "database %-22s %8.1f MB  %10d rows\n", n, float64(sizes[n])/(1<<20), rows[n])
	}
}
