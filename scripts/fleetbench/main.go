//go:build linux

// Command fleetbench is the harness of scripts/bench-console-views.sh: it
// generates a fleet into a console store (devices × days of aggregates,
// about R records per device-hour over K distinct app × domain keys, with
// raw chunks for the last day only, as if retention had removed the rest),
// starts the real `netward-console serve` on it, and times every analytics
// view over HTTPS (p50/p95 of N rounds), then reports the database size.
//
//	go run ./scripts/fleetbench -store sqlite|postgres -console bin/netward-console
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/internal/pgtest"
	"github.com/netward/netward/telemetry"
)

type params struct {
	devices, days, records, keys, rounds int
	seed                                 uint64
	genOnly, measureOnly                 bool
	dsn, lock                            string
}

func main() {
	kind := flag.String("store", "sqlite", "sqlite or postgres (a private cluster is started)")
	consoleBin := flag.String("console", "bin/netward-console", "the netward-console binary")
	dir := flag.String("dir", "", "work directory (default: a new temporary one, removed at the end)")
	var p params
	flag.IntVar(&p.devices, "devices", 1000, "devices")
	flag.IntVar(&p.days, "days", 30, "days of aggregates")
	flag.IntVar(&p.records, "records", 500, "records per device-hour")
	flag.IntVar(&p.keys, "keys", 20, "distinct app × domain keys per device-hour")
	flag.IntVar(&p.rounds, "rounds", 20, "timed rounds per view")
	flag.Uint64Var(&p.seed, "seed", 1, "random seed")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the generation")
	genOnly := flag.Bool("gen-only", false, "generate and report the size, no console")
	measureOnly := flag.Bool("measure-only", false, "measure a fleet generated before into -dir (SQLite) or -dsn")
	flag.StringVar(&p.dsn, "dsn", "", "a PostgreSQL database of your own (a cluster kept between -gen-only and -measure-only) instead of a private one")
	flag.StringVar(&p.lock, "lock", "", "hold flock(2) on this file while timing (the shared bench lock)")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	p.genOnly, p.measureOnly = *genOnly, *measureOnly
	if err := run(*kind, *consoleBin, *dir, p); err != nil {
		log.Fatal(err)
	}
}

func run(kind, consoleBin, dir string, p params) error {
	ctx := context.Background()
	if dir == "" {
		d, err := os.MkdirTemp("", "fleetbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	dsn := "sqlite:" + filepath.Join(dir, "console.db")
	if p.dsn != "" {
		dsn = p.dsn
	}
	if p.measureOnly {
		cat, err := catalog.Builtin()
		if err != nil {
			return err
		}
		_, g := fleetPool(cat)
		size, err := dbSize(ctx, kind, dsn)
		if err != nil {
			return err
		}
		fmt.Printf("database: %.1f MB\n", float64(size)/1e6)
		return serveAndMeasure(consoleBin, dir, dsn, g, p)
	}
	var pg *pgtest.Cluster
	if kind == "postgres" && p.dsn == "" {
		var err error
		if pg, err = pgtest.Start(); err != nil {
			return err
		}
		defer pg.Stop()
		if dsn, err = pg.NewDatabase("fleet"); err != nil {
			return err
		}
	}
	st, err := store.Open(ctx, store.Config{DSN: dsn})
	if err != nil {
		return err
	}
	t0 := time.Now()
	g, err := generate(ctx, st, filepath.Join(dir, "chunks"), p)
	if err != nil {
		return err
	}
	// A running console folds the pending fleet-wide rows every second,
	// vacuums their tables and has autovacuum analyse what it wrote: the
	// fleet is measured in that state, not straight after a bulk load.
	if err := st.FoldRollups(ctx); err != nil {
		return err
	}
	if err := st.VacuumPending(ctx); err != nil {
		return err
	}
	if kind == "postgres" {
		if err := analyze(ctx, dsn); err != nil {
			return err
		}
	}
	fmt.Printf("generated %d devices × %d days (%d records/device-hour, %d keys) in %s; raw chunks: %d files, %.1f MB\n",
		p.devices, p.days, p.records, p.keys, time.Since(t0).Round(time.Second), g.rawFiles, float64(g.rawBytes)/1e6)
	size, err := dbSize(ctx, kind, dsn)
	if err != nil {
		return err
	}
	st.Close()
	if p.genOnly {
		fmt.Printf("database: %.1f MB\n", float64(size)/1e6)
		return nil
	}
	devDays := float64(p.devices * p.days)
	fmt.Printf("database: %.1f MB, %.1f MB per 1,000 device-days\n", float64(size)/1e6, float64(size)/1e6/devDays*1000)

	return serveAndMeasure(consoleBin, dir, dsn, g, p)
}

// serveAndMeasure starts the console on the fleet's store and times the
// views.
func serveAndMeasure(consoleBin, dir, dsn string, g *generated, p params) error {
	if p.lock != "" {
		f, err := os.OpenFile(p.lock, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			return err
		}
		defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	cfg := map[string]any{"version": 1, "dataDir": dir, "listen": "127.0.0.1:0", "store": map[string]any{"dsn": dsn}, "log": map[string]any{"level": "warn"}}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "console.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return err
	}
	add := exec.Command(consoleBin, "admin", "add", "bench", "--role", "viewer", "--password-stdin", "--config", cfgPath)
	add.Stdin = strings.NewReader("bench password 1234\n")
	if out, err := add.CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
		return fmt.Errorf("admin add: %v\n%s", err, out)
	}
	srv := exec.Command(consoleBin, "serve", "--config", cfgPath)
	stdout, _ := srv.StdoutPipe()
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	sc := bufio.NewScanner(stdout)
	base := ""
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "netward-console serving "); ok {
			base = u
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if base == "" {
		return fmt.Errorf("the console did not start")
	}
	return measure(base, g, p)
}

// analyze updates PostgreSQL's planner statistics of the whole database.
func analyze(ctx context.Context, dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze the generated fleet: %w", err)
	}
	return nil
}

func dbSize(ctx context.Context, kind, dsn string) (int64, error) {
	if kind == "postgres" {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return 0, err
		}
		defer db.Close()
		var n int64
		err = db.QueryRowContext(ctx, "SELECT pg_database_size(current_database())").Scan(&n)
		return n, err
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	var n int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			n += fi.Size()
		}
	}
	return n, nil
}

// generated names what the measurements query.
type generated struct {
	apps, hunt       []string
	device           string
	rawFiles         int
	rawBytes         int64
	busiestApp       string
	UnsanctionedApps []string
}

type key struct{ app, domain string }

func generate(ctx context.Context, st *store.Store, chunkDir string, p params) (*generated, error) {
	cat, err := catalog.Builtin()
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(p.seed, 2))
	pool, g := fleetPool(cat)
	zipf := rand.NewZipf(rng, 1.1, 2, uint64(len(pool)-1))
	// Five apps tagged Unsanctioned (blocks), five Monitored (warns, some
	// bypassed).
	unsanctioned, monitored := map[string]bool{}, map[string]bool{}
	for i, k := range pool[10:20] {
		tag := "Unsanctioned"
		if i >= 5 {
			tag = "Monitored"
			monitored[k.app] = true
		} else {
			unsanctioned[k.app] = true
			g.UnsanctionedApps = append(g.UnsanctionedApps, k.app)
		}
		if err := st.SetTag(ctx, k.app, tag, "fleetbench"); err != nil {
			return nil, err
		}
	}
	if _, err := st.CreateEnrollKey(ctx, store.EnrollKey{Name: "fleet", Hash: "fleet-key", CreatedBy: "fleetbench", CreatedAt: time.Now()}); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	end := store.HourOf(now) + 3600 // the current hour is the last
	start := end - int64(p.days)*86400
	rawFrom := end - 86400
	for d := range p.devices {
		id := fmt.Sprintf("fleet-%05d", d)
		if _, _, err := st.Enroll(ctx, "fleet-key", store.Device{ID: id, Name: id, TokenHash: "tok-" + id}, ""); err != nil {
			return nil, err
		}
		users := []string{fmt.Sprintf("user%05d", d)}
		if d%10 == 0 {
			users = append(users, fmt.Sprintf("user%05d", d+1))
		}
		// The device's working set: 40 keys drawn from the fleet's pool.
		var set []key
		for len(set) < 40 {
			k := pool[zipf.Uint64()]
			if !slices.Contains(set, k) {
				set = append(set, k)
			}
		}
		var batches []*store.ChunkBatch
		var day *store.ChunkBatch
		for hour := start; hour < end; hour += 3600 {
			raw := hour >= rawFrom
			if raw || day == nil || (hour-start)%86400 == 0 {
				b := &store.ChunkBatch{Traffic: map[store.TrafficKey]*store.Counters{}, Users: map[store.UserKey]struct{}{}, Bypassers: map[store.UserKey]struct{}{}}
				chunk := fmt.Sprintf("c%d", hour)
				rel := filepath.Join(time.Unix(hour, 0).UTC().Format("2006-01-02"), id, chunk+".ndjson.gz")
				b.Meta = store.ChunkMeta{DeviceID: id, ChunkID: chunk, SHA256: chunk, ReceivedAt: time.Unix(hour+3599, 0).UTC(), Path: rel}
				batches = append(batches, b)
				day = b
			}
			var recs []telemetry.Record
			ks := set[:0:0]
			for _, i := range rng.Perm(len(set))[:p.keys] {
				ks = append(ks, set[i])
			}
			// Records per key: a few keys carry most of the hour.
			counts := make([]int, p.keys)
			for range p.records / 10 {
				counts[min(int(rng.ExpFloat64()*float64(p.keys)/3), p.keys-1)] += 10
			}
			for ki, k := range ks {
				n := counts[ki]
				if n == 0 {
					continue
				}
				tk := store.TrafficKey{Hour: hour, AppID: k.app, Domain: k.domain}
				c := day.Traffic[tk]
				if c == nil {
					c = &store.Counters{}
					day.Traffic[tk] = c
				}
				if !raw {
					// Aggregates only: the same counters as the records below
					// would add, without drawing each record.
					c.Transactions += int64(n)
					c.BytesSent += int64(n) * int64(1500+rng.IntN(1000))
					c.BytesReceived += int64(n) * int64(15000+rng.IntN(10000))
					switch {
					case unsanctioned[k.app]:
						c.Blocks += int64(n)
					case monitored[k.app]:
						c.Bypasses += int64(n / 20)
						c.Warns += int64(n - n/20)
						if n >= 20 {
							day.Bypassers[store.UserKey{TrafficKey: tk, User: users[0]}] = struct{}{}
						}
					}
					for _, u := range users[:min(n, len(users))] {
						day.Users[store.UserKey{TrafficKey: tk, User: u}] = struct{}{}
					}
					continue
				}
				for r := range n {
					user := users[r%len(users)]
					action := telemetry.ConnectionSuccess
					switch {
					case unsanctioned[k.app]:
						action = telemetry.NetworkProtectionBlocked
					case monitored[k.app]:
						action = telemetry.NetworkProtectionWarned
						if r%20 == 19 {
							action = telemetry.NetworkProtectionUserBypassEvent
						}
					case r%2 == 0:
						action = telemetry.DnsQueryResponse
					}
					sent, recv := int64(rng.IntN(4000)), int64(rng.IntN(40000))
					c.Transactions++
					c.BytesSent += sent
					c.BytesReceived += recv
					switch action {
					case telemetry.NetworkProtectionBlocked:
						c.Blocks++
					case telemetry.NetworkProtectionWarned:
						c.Warns++
					case telemetry.NetworkProtectionUserBypassEvent:
						c.Bypasses++
						day.Bypassers[store.UserKey{TrafficKey: tk, User: user}] = struct{}{}
					}
					if r < len(users) {
						day.Users[store.UserKey{TrafficKey: tk, User: user}] = struct{}{}
					}
					if raw {
						recs = append(recs, telemetry.Record{Timestamp: time.Unix(hour+int64(len(recs)*3600/p.records), 0).UTC(), DeviceId: id, DeviceName: id, ActionType: action,
							RemoteUrl: "https://" + k.domain + "/", RemotePort: 443, LocalIP: fmt.Sprintf("10.%d.%d.%d", d/65536, d/256%256, d%256), Protocol: "Tcp",
							BytesSent: sent, BytesReceived: recv, InitiatingProcessFileName: "browser", InitiatingProcessAccountName: user})
					}
				}
			}
			if raw {
				n, err := writeChunk(filepath.Join(chunkDir, day.Meta.Path), recs)
				if err != nil {
					return nil, err
				}
				day.Meta.Records, day.Meta.CompressedBytes = int64(len(recs)), n
				g.rawFiles++
				g.rawBytes += n
			} else {
				day.Meta.Records += int64(p.records)
			}
		}
		if err := st.BulkLoad(ctx, batches); err != nil {
			return nil, fmt.Errorf("device %s: %w", id, err)
		}
		if d%100 == 99 {
			fmt.Fprintf(os.Stderr, "  %d devices\n", d+1)
		}
	}
	// Retention kept the raw chunks of the last day only.
	if _, err := st.ChunksBefore(ctx, time.Unix(rawFrom, 0), 1); err != nil {
		return nil, err
	}
	for {
		old, err := st.ChunksBefore(ctx, time.Unix(rawFrom, 0), 5000)
		if err != nil {
			return nil, err
		}
		if len(old) == 0 {
			break
		}
		for _, c := range old {
			if err := st.DeleteChunk(ctx, c.DeviceID, c.ChunkID); err != nil {
				return nil, err
			}
		}
	}
	return g, nil
}

// fleetPool is the fleet's apps: 300 catalog apps, popular ones far more
// common (Zipf), plus 500 domains no app claims; and the names the
// measurements query.
func fleetPool(cat *catalog.Catalog) ([]key, *generated) {
	var pool []key
	for _, a := range cat.Apps() {
		if len(a.Domains) > 0 && !strings.Contains(a.Domains[0], "/") {
			pool = append(pool, key{a.ID, "www." + a.Domains[0]})
		}
		if len(pool) == 300 {
			break
		}
	}
	for i := range 500 {
		pool = append(pool, key{"", fmt.Sprintf("svc%d.unknown%d.example", i%7, i)})
	}
	g := &generated{device: "fleet-00000", busiestApp: pool[0].app}
	for _, k := range pool[:3] {
		g.apps = append(g.apps, k.app)
	}
	for _, k := range pool[:10] {
		g.hunt = append(g.hunt, strings.TrimPrefix(k.domain, "www."))
	}
	return pool, g
}

func writeChunk(path string, recs []telemetry.Record) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	enc := json.NewEncoder(zw)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return 0, err
		}
	}
	zw.Close()
	return int64(b.Len()), os.WriteFile(path, b.Bytes(), 0o600)
}

func measure(base string, g *generated, p params) error {
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint: loopback bench
		DialContext: (&net.Dialer{}).DialContext}}
	body, _ := json.Marshal(map[string]string{"name": "bench", "password": "bench password 1234"})
	resp, err := cl.Post(base+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("login: %s", resp.Status)
	}
	views := []struct{ name, path string }{
		{"discovered apps 24h", "/api/discovery/apps?period=24h"},
		{"discovered apps 7d", "/api/discovery/apps?period=7d"},
		{"discovered apps 30d", "/api/discovery/apps?period=30d"},
		{"discovered apps 90d", "/api/discovery/apps?period=90d"},
		{"apps 30d, minUsers=100", "/api/discovery/apps?period=30d&minUsers=100"},
		{"custom-app candidates 30d", "/api/discovery/candidates?period=30d"},
		{"one app 24h", "/api/discovery/apps/" + g.busiestApp + "?period=24h"},
		{"one app 30d", "/api/discovery/apps/" + g.busiestApp + "?period=30d"},
		{"machines 24h", "/api/machines?period=24h"},
		{"machines 30d", "/api/machines?period=30d"},
		{"one machine 30d", "/api/machines/" + g.device + "?period=30d"},
		{"machine events 24h (first page)", "/api/machines/" + g.device + "/events?period=24h"},
		{"machine events 24h, blocked, one domain", "/api/machines/" + g.device + "/events?period=24h&action=NetworkProtectionBlocked&domain=" + strings.Join(g.hunt[:1], ",")},
		{"alerts 30d", "/api/alerts?period=30d"},
		{"hunting 10 domains 30d (first page)", "/api/hunt?period=30d&domains=" + strings.Join(g.hunt, ",")},
		{"apps 30d as CSV", "/api/discovery/apps?period=30d&format=csv"},
	}
	fmt.Printf("%-42s %8s %8s %8s %s\n", "view", "p50 ms", "p95 ms", "max ms", "answer")
	for _, v := range views {
		var times []time.Duration
		var size int
		for range p.rounds {
			t := time.Now()
			resp, err := cl.Get(base + v.path)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			times = append(times, time.Since(t))
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: %s %s", v.path, resp.Status, b)
			}
			size = len(b)
		}
		slices.Sort(times)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		fmt.Printf("%-42s %8.1f %8.1f %8.1f %d bytes\n", v.name, ms(times[len(times)/2]), ms(times[(len(times)*95+99)/100-1]), ms(times[len(times)-1]), size)
	}
	return nil
}
