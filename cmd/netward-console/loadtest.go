package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
	if err := fs.Parse(args); err != nil {
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
	// Held polls are one descriptor each, on both sides.
	if err := loadtest.RaiseFileLimit(uint64(*polls)*2 + 4096); err != nil {
		log.Warn("could not raise the open-file limit", "err", err)
	}
	cfg := loadtest.Config{Console: *consoleURL, Fingerprint: *fingerprint, AdminPassword: *password, PID: *pid,
		Devices: *devices, Polls: *polls, Uploaders: *uploaders, Duration: *duration, Rate: *rate, FullEvery: *fullEvery,
		SmallRecords: *small, FeedChanges: *changes, Names: names, Log: log}
	dsn := ""
	if cfg.Console == "" {
		stop, err := startConsole(ctx, &cfg, &dsn, *storeKind, *keep, *profile, *binary, *polls, log)
		if err != nil {
			fmt.Fprintf(stderr, "netward-console loadtest: %v\n", err)
			return 1
		}
		defer stop()
	}
	rep, err := loadtest.Run(ctx, cfg)
	if rep != nil {
		printReport(stdout, rep, cfg)
		if dsn != "" {
			printSizes(ctx, stdout, dsn)
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

// startConsole starts a PostgreSQL cluster (for --store postgres) and
// this binary's `serve` on a fresh data directory, and fills cfg with its
// address, fingerprint, admin password and pid.
func startConsole(ctx context.Context, cfg *loadtest.Config, dsnOut *string, storeKind, keep, profile, binary string, polls int, log *slog.Logger) (stop func(), err error) {
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
	dir := keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "netward-loadtest-"); err != nil {
			return stop, err
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	} else if err = os.MkdirAll(dir, 0o700); err != nil {
		return stop, err
	}
	dsn := "sqlite:" + filepath.Join(dir, "console.db")
	if storeKind == "postgres" {
		pg, err := pgtest.StartWith(pgtest.Options{Durable: true, Settings: []string{"shared_buffers=256MB", "max_wal_size=4GB"}})
		if err != nil {
			return stop, fmt.Errorf("PostgreSQL: %w", err)
		}
		cleanups = append(cleanups, pg.Stop)
		if dsn, err = pg.NewDatabase("loadtest"); err != nil {
			return stop, err
		}
	} else if storeKind != "sqlite" {
		return stop, fmt.Errorf("--store %q: use postgres or sqlite", storeKind)
	}
	*dsnOut = dsn
	conf := map[string]any{
		"version": 1, "dataDir": filepath.Join(dir, "data"), "listen": "127.0.0.1:0", "store": map[string]string{"dsn": dsn},
		"feed":   map[string]any{"maxHeldPolls": polls + 1000},
		"ingest": map[string]any{"retryAfterSeconds": 5},
		"log":    map[string]string{"level": "warn"},
	}
	b, _ := json.Marshal(conf)
	cfgPath := filepath.Join(dir, "console.json")
	if err = os.WriteFile(cfgPath, b, 0o600); err != nil {
		return stop, err
	}
	exe, err := os.Executable()
	if binary != "" {
		exe, err = binary, nil
	}
	if err != nil {
		return stop, err
	}
	logf, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		return stop, err
	}
	cmd := exec.Command(exe, "serve", "--config", cfgPath)
	if profile != "" {
		if profile, err = filepath.Abs(profile); err != nil {
			return stop, err
		}
		cmd.Args = append(cmd.Args, "--cpuprofile", profile)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return stop, err
	}
	if err = cmd.Start(); err != nil {
		return stop, err
	}
	cleanups = append(cleanups, func() {
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
	})
	cfg.PID = cmd.Process.Pid
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "netward-console serving "):
			cfg.Console = strings.TrimPrefix(line, "netward-console serving ")
		case strings.HasPrefix(line, "certificate SHA-256 fingerprint"):
			cfg.Fingerprint = strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:])
		case strings.HasPrefix(line, "initial admin account"):
			cfg.AdminPassword = strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:])
		}
		if cfg.Console != "" && cfg.AdminPassword != "" {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if cfg.Console == "" || cfg.AdminPassword == "" {
		return stop, errors.New("the console did not start; see console.log in its data directory (--keep DIR)")
	}
	log.Info("console started", "url", cfg.Console, "pid", cfg.PID, "store", storeKind, "dir", dir)
	_ = ctx
	return stop, nil
}

func printReport(w io.Writer, r *loadtest.Report, cfg loadtest.Config) {
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(w, "devices %d enrolled in %.1f s; %d long polls held (after %.1f s)\n", r.Devices, r.EnrollSeconds, r.HeldPolls, r.PollsHeldAfter)
	fmt.Fprintf(w, "uploads: %d uploaders, %.0f s: %d chunks (%.1f/s), %d records (%.0f/s), %.1f MB compressed\n",
		cfg.Uploaders, r.Seconds, r.Chunks, r.ChunksPerSec, r.Records, r.RecordsPerSec, mb(r.UploadBytes))
	fmt.Fprintf(w, "upload latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms; 503 busy %d, errors %d, unacknowledged chunks %d\n",
		r.UploadP50ms, r.UploadP99ms, r.UploadMaxms, r.Busy, r.Errors, r.Unacknowledged)
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	for _, f := range r.Feed {
		fmt.Fprintf(w, "feed sequence %d to %d polls: delivered %d; p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, 100%% %.0f ms; %.1f MB sent (%.0f bytes per poll, TLS included)\n",
			f.Sequence, f.Polls, f.Delivered, f.P50ms, f.P95ms, f.P99ms, f.P100ms, mb(f.BytesSent), f.BytesPerPoll)
	}
	fmt.Fprintf(w, "console: peak RSS %.0f MB, end RSS %.0f MB, CPU %.1f s (%.2f cores)\n", mb(r.Console.PeakRSSBytes), mb(r.Console.EndRSSBytes), r.Console.CPUSeconds, r.Console.CPUCores)
	c := r.Check
	fmt.Fprintf(w, "check: %d devices, transactions sent %d / counted %d, bytes received sent %d / counted %d: ", c.Devices, c.SentTransactions, c.CountedTransactions, c.SentBytesReceived, c.CountedBytesReceived)
	if c.OK {
		fmt.Fprintln(w, "OK (none lost, none counted twice)")
	} else {
		fmt.Fprintf(w, "MISMATCH on %d devices (%s)\n", c.DevicesWithDifferences, c.FirstDifference)
	}
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
