//go:build linux

// Command benchdns is the harness of `make bench-dns` (scripts/bench-dns.sh,
// which runs it as root inside a network namespace of its own): the real
// `netward run` binary, on the configuration the package ships (dns.capture
// and SNI inspection on, telemetry kept locally), with the StevenBlack list
// from a file:// source, side by side with dnsmasq and unbound blocking the
// same names and forwarding to the same local upstream, measured with
// dnsperf in interleaved rounds. Reported per workload, as medians over the
// rounds: q/s and its ratio to each reference, server CPU µs per query (and
// dnsperf's own, to show when the load generator is the cap), queries lost
// at 80 % of the peak rate, median and p99 added latency of sequential
// queries, and RSS idle and at peak load; then netward with 1,000,000
// indicators.
//
// scripts/dnsbench (the proxy package alone) remains as a profiling aid.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/scripts/internal/blocklist"
)

const (
	upstreamAddr = "127.0.0.1:25400"
	// inProcessAddr is the same upstream served by the harness's own
	// process: asked directly, it is the baseline the "added" latency was
	// first measured against (see latencies).
	inProcessAddr = "127.0.0.1:25401"
	dnsmasqPort   = 25402
	unboundPort   = 25403
	// netward listens where the shipped config puts it (dns.capture on).
	netwardIP = "127.0.0.153"
)

type options struct {
	netward, list, work string
	rounds, secs        int
	big                 int
	clients, outstand   int
	// only and workloads narrow a run (profiling aids): the servers and
	// workloads to measure, comma-separated; empty means all.
	only, workloads string
	// ab, when set, runs netward alone in two variants instead: A as
	// shipped and B with these environment variables (KEY=VAL), config
	// settings (cfg:SECTION.KEY=JSON) and binary (bin:PATH: another build,
	// main's for a before/after), spaces between, each started afresh in
	// every round, in turns (abRun).
	ab string
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-upstream-process" {
		// The local upstream, in a process of its own (run starts it).
		if _, err := upstream(upstreamAddr); err != nil {
			fmt.Fprintln(os.Stderr, "benchdns upstream:", err)
			os.Exit(1)
		}
		select {}
	}
	var o options
	flag.StringVar(&o.netward, "netward", "", "the netward binary")
	flag.StringVar(&o.list, "list", "", "blocklist (one domain per line, or a hosts file)")
	flag.StringVar(&o.work, "work", "", "work directory (mode 0700, root's)")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds")
	flag.IntVar(&o.secs, "secs", 5, "seconds per dnsperf run")
	flag.IntVar(&o.big, "big", 1_000_000, "indicators for the footprint run (0: skip)")
	flag.IntVar(&o.clients, "c", 10, "dnsperf clients (-c)")
	flag.IntVar(&o.outstand, "q", 500, "dnsperf outstanding queries (-q)")
	flag.StringVar(&o.only, "servers", "", "servers to run, comma-separated (netward,dnsmasq,unbound; default all)")
	flag.StringVar(&o.workloads, "workloads", "", "workloads to run, comma-separated (mix,allowed,blocked,cached; default all)")
	flag.StringVar(&o.ab, "ab", "", "A/B run of netward alone: variant B gets these environment variables, config settings and binary (KEY=VAL cfg:dns.udpSockets=1 bin:/tmp/netward-main)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchdns:", err)
		os.Exit(1)
	}
}

// server is one DNS server under test.
type server struct {
	name string
	addr string // host
	port int
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func run(o options) error {
	names, err := blocklist.Read(o.list)
	if err != nil {
		return err
	}
	// Interrupted, the servers it started are killed with it.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	// The upstream every server forwards to runs in a process of its own,
	// like the servers: asked directly, it is the baseline of the added
	// latency, and a round trip to another process costs a thread's sleep
	// and wakeup on each side that one inside the harness's process (the
	// client's goroutine and the server's run on one thread, the Go
	// netpoller handing the datagram over without any sleeping) does not.
	// Against that in-process baseline even dnsmasq added +54 µs to a
	// cached answer (docs/dns.md, seventh part); it is still measured
	// and shown.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	up := exec.CommandContext(ctx, self, "-upstream-process")
	up.Stderr = os.Stderr
	if err := up.Start(); err != nil {
		return err
	}
	defer func() { _ = up.Process.Kill(); _ = up.Wait() }()
	if err := waitAnswering(upstreamAddr); err != nil {
		return err
	}
	stopUp, err := upstream(inProcessAddr)
	if err != nil {
		return err
	}
	defer stopUp()

	files := &queries{dir: o.work, names: names, r: rand.New(rand.NewPCG(21, 1))}
	if o.ab != "" {
		return abRun(ctx, o, names, files)
	}
	nw, err := startNetward(ctx, o, "nw", o.list)
	if err != nil {
		return err
	}
	defer stop(nw)
	dm, err := startDnsmasq(ctx, o, names)
	if err != nil {
		return err
	}
	defer stop(dm)
	ub, err := startUnbound(ctx, o, names)
	if err != nil {
		return err
	}
	defer stop(ub)
	servers := []*server{nw}
	if pick(o.only, "dnsmasq") {
		servers = append(servers, dm)
	}
	if pick(o.only, "unbound") {
		servers = append(servers, ub)
	}
	for _, s := range servers {
		if err := waitBlocking(s, names[0]); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second) // let the load's garbage go
	idle := map[string]int{}
	loadPeak := map[string]int{}
	for _, s := range servers {
		st := procStatus(s.pid())
		idle[s.name], loadPeak[s.name] = st["VmRSS"], st["VmHWM"]
		// Reset the peak, so the one read at the end is the peak under load.
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid()), []byte("5"), 0)
	}

	fmt.Printf("bench-dns: %d cores, %d blocked names, %d rounds × %d s per dnsperf run (-c %d -q %d), all on this machine\n",
		nproc(), len(names), o.rounds, o.secs, o.clients, o.outstand)
	var workloads []string
	for _, w := range []string{"mix", "allowed", "blocked", "cached"} {
		if pick(o.workloads, w) {
			workloads = append(workloads, w)
		}
	}
	// results[workload][server] is one sample per round.
	results := map[string]map[string][]sample{}
	for _, w := range workloads {
		results[w] = map[string][]sample{}
	}
	for r := range o.rounds {
		for _, w := range workloads {
			order := slices.Clone(servers)
			for range (r + len(w)) % len(order) { // rotate: no server always goes first
				order = append(order[1:], order[0])
			}
			for _, s := range order {
				sm, err := measure(o, s, files, w)
				if err != nil {
					return fmt.Errorf("%s %s: %w", s.name, w, err)
				}
				results[w][s.name] = append(results[w][s.name], sm)
				fmt.Fprintf(os.Stderr, "round %d %-8s %-8s %7.0f q/s  cpu %5.1f µs/q  dnsperf %5.1f µs/q  lost@80%% %d/%d\n",
					r+1, w, s.name, sm.qps, sm.cpuPerQ, sm.perfPerQ, sm.lost80, sm.sent80)
			}
		}
	}
	lat := latencies(servers, names)
	peak := map[string]int{}
	for _, s := range servers {
		peak[s.name] = procStatus(s.pid())["VmHWM"]
	}
	report(servers, workloads, results, lat, idle, loadPeak, peak, nw)

	if o.big > 0 {
		stop(nw)
		if err := bigRun(ctx, o, names, files, ""); err != nil {
			return err
		}
	}
	return nil
}

// pick reports whether name is in the comma-separated list (empty: all).
func pick(list, name string) bool {
	return list == "" || slices.Contains(strings.Split(list, ","), name)
}

// sample is one measurement of one server on one workload.
type sample struct {
	qps              float64
	cpuPerQ          float64 // server CPU µs per completed query
	perfPerQ         float64 // dnsperf's own CPU µs per completed query
	lost80, sent80   int
	serverDrops      int
	completed, queue int
}

// measure runs dnsperf at saturation, then at 80 % of the rate reached,
// each on a file of its own (the cached workload after a warming pass).
func measure(o options, s *server, files *queries, w string) (sample, error) {
	var sm sample
	if w == "cached" {
		// Warm the cache: one pass over the hot names.
		f, err := files.file(w)
		if err == nil {
			_, err = dnsperf(o, s, f, 0, 2)
		}
		if err != nil {
			return sm, err
		}
	}
	file, err := files.file(w)
	if err != nil {
		return sm, err
	}
	cpu0 := procCPU(s.pid())
	res, err := dnsperf(o, s, file, 0, o.secs)
	if err != nil {
		return sm, err
	}
	cpu := procCPU(s.pid()) - cpu0
	sm.qps = res.qps
	sm.completed = res.completed
	if res.completed > 0 {
		sm.cpuPerQ = float64(cpu.Microseconds()) / float64(res.completed)
		sm.perfPerQ = float64(res.cpu.Microseconds()) / float64(res.completed)
	}
	_ = os.Remove(file)
	if file, err = files.file(w); err != nil {
		return sm, err
	}
	defer os.Remove(file)
	d0 := udpDrops(s.port)
	res80, err := dnsperf(o, s, file, int(res.qps*0.8), o.secs)
	if err != nil {
		return sm, err
	}
	sm.lost80, sm.sent80 = res80.lost, res80.sent
	sm.serverDrops = udpDrops(s.port) - d0
	return sm, nil
}

type perfResult struct {
	qps                   float64
	sent, completed, lost int
	cpu                   time.Duration
}

var perfLine = regexp.MustCompile(`(?m)^\s*(Queries sent|Queries completed|Queries lost|Queries per second):\s+([0-9.]+)`)

func dnsperf(o options, s *server, file string, qps, secs int) (perfResult, error) {
	args := []string{"-s", s.addr, "-p", strconv.Itoa(s.port), "-d", file, "-l", strconv.Itoa(secs),
		"-c", strconv.Itoa(o.clients), "-q", strconv.Itoa(o.outstand), "-t", "2", "-b", "4096"}
	if qps > 0 {
		args = append(args, "-Q", strconv.Itoa(qps))
	}
	cmd := exec.Command("dnsperf", args...)
	out, err := cmd.Output()
	if err != nil {
		return perfResult{}, fmt.Errorf("dnsperf %v: %w\n%s", args, err, out)
	}
	var r perfResult
	for _, m := range perfLine.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[1] {
		case "Queries sent":
			r.sent = int(v)
		case "Queries completed":
			r.completed = int(v)
		case "Queries lost":
			r.lost = int(v)
		case "Queries per second":
			r.qps = v
		}
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r, nil
}

// upstream serves every A query with 192.0.2.1: with TTL 0 under
// fwd.bench.test (forwarded workloads: no server may cache it), TTL 3600
// otherwise (the cached workload's hot names). Other types get NODATA.
func upstream(addr string) (func(), error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	// The room dnsperf gets (bench-dns.sh raises rmem_max to it): with the
	// default 208 KiB this upstream dropped queries (/proc/net/udp: 12,249
	// in three rounds at ~45,000 q/s), which a server then waits a retry
	// for; a lost query is the server's to count, not the harness's.
	if uc, ok := pc.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(4 << 20)
	}
	a := net.IPv4(192, 0, 2, 1).To4()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			q := r.Question[0]
			ttl := uint32(3600)
			if strings.HasSuffix(strings.ToLower(q.Name), ".fwd.bench.test.") {
				ttl = 0
			}
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a}}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	return func() { _ = srv.Shutdown() }, nil
}

// queries writes dnsperf data files: allowed (forwarded names), blocked
// (list names, at random), mix (30 % blocked), cached (5,000 hot names).
// Forwarded names are new in every file it writes (some servers cache even
// a TTL of 0: unbound does), so a forwarded query is never answered from a
// cache, in any run or round.
type queries struct {
	dir   string
	names []string
	r     *rand.Rand
	seq   int
}

func (q *queries) file(w string) (string, error) {
	q.seq++
	n := 400_000 // more than a run sends: dnsperf would start over
	var gen func(i int) string
	switch w {
	case "allowed":
		gen = func(i int) string { return fmt.Sprintf("a%d-%d.fwd.bench.test", i, q.seq) }
	case "blocked":
		gen = func(int) string { return q.names[q.r.IntN(len(q.names))] }
	case "mix":
		gen = func(i int) string {
			if q.r.Float64() < 0.3 {
				return q.names[q.r.IntN(len(q.names))]
			}
			return fmt.Sprintf("m%d-%d.fwd.bench.test", i, q.seq)
		}
	case "cached":
		n = 5000
		gen = func(i int) string { return fmt.Sprintf("h%d.hot.bench.test", i) }
	}
	p := filepath.Join(q.dir, fmt.Sprintf("%s-%d.txt", w, q.seq))
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(bw, "%s A\n", gen(i))
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	return p, f.Close()
}

// startNetward runs `netward run` on the package's configuration
// (deploy/package/netward.json: capture and SNI inspection on), with its
// data, control socket and list under the work directory and the bench
// upstream.
func startNetward(ctx context.Context, o options, name, list string, env ...string) (*server, error) {
	dir := filepath.Join(o.work, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"version":    1,
		"mode":       "block",
		"dataDir":    filepath.Join(dir, "data"),
		"indicators": map[string]any{"source": "file://" + list},
		"dns":        map[string]any{"capture": true, "upstreams": []string{upstreamAddr}},
		"sni":        map[string]any{"enabled": true},
		"control":    map[string]any{"socket": filepath.Join(dir, "netward.sock")},
		"metrics":    map[string]any{"listen": ""},
	}
	// -ab's config settings (cfg:SECTION.KEY=JSON): set over the above;
	// bin:PATH runs another netward binary.
	var plain []string
	bin := o.netward
	for _, e := range env {
		if p, ok := strings.CutPrefix(e, "bin:"); ok {
			bin = p
			continue
		}
		k, v, _ := strings.Cut(strings.TrimPrefix(e, "cfg:"), "=")
		sec, key, ok := strings.Cut(k, ".")
		if !strings.HasPrefix(e, "cfg:") || !ok {
			plain = append(plain, e)
			continue
		}
		var val any
		if err := json.Unmarshal([]byte(v), &val); err != nil {
			return nil, fmt.Errorf("-ab %s: the value is not JSON: %w", e, err)
		}
		m, _ := cfg[sec].(map[string]any)
		if m == nil {
			m = map[string]any{}
			cfg[sec] = m
		}
		m[key] = val
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	path := filepath.Join(dir, "netward.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	s := &server{name: "netward", addr: netwardIP, port: 53, log: &bytes.Buffer{}}
	s.cmd = exec.CommandContext(ctx, bin, "run", "--config", path)
	s.cmd.Env = append(os.Environ(), plain...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

func startDnsmasq(ctx context.Context, o options, names []string) (*server, error) {
	conf := filepath.Join(o.work, "dnsmasq-block.conf")
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "address=/%s/\n", n) // NXDOMAIN for the name and below
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	s := &server{name: "dnsmasq", addr: "127.0.0.1", port: dnsmasqPort, log: &bytes.Buffer{}}
	// The cache as large as netward's (10,000 entries); the in-flight bound
	// as netward's MaxInFlight.
	s.cmd = exec.CommandContext(ctx, "dnsmasq", "-k", fmt.Sprintf("--port=%d", dnsmasqPort), "--listen-address=127.0.0.1",
		"--bind-interfaces", "--no-resolv", "--no-hosts", "--server=127.0.0.1#25400", "--cache-size=10000",
		"--dns-forward-max=1024", "--conf-file="+conf, "--log-facility=/dev/null", "--pid-file=", "--user=root")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	return s, s.cmd.Start()
}

func startUnbound(ctx context.Context, o options, names []string) (*server, error) {
	conf := filepath.Join(o.work, "unbound.conf")
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  interface: 127.0.0.1@%d
  port: %d
  do-ip6: no
  chroot: ""
  username: ""
  directory: "%s"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-not-query-localhost: no
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  # The bench names are under test. (RFC 6761), which unbound answers
  # NXDOMAIN itself by default: forward them like the other servers do.
  local-zone: "test." nodefault
`, unboundPort, unboundPort, o.work)
	for _, n := range names {
		fmt.Fprintf(&b, "  local-zone: \"%s.\" always_nxdomain\n", n)
	}
	b.WriteString("forward-zone:\n  name: \".\"\n  forward-addr: 127.0.0.1@25400\n")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	s := &server{name: "unbound", addr: "127.0.0.1", port: unboundPort, log: &bytes.Buffer{}}
	s.cmd = exec.CommandContext(ctx, "unbound", "-d", "-c", conf)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	return s, s.cmd.Start()
}

// waitAnswering waits until the upstream at addr answers.
func waitAnswering(addr string) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for range 100 {
		m := new(dns.Msg)
		m.SetQuestion("ready.fwd.bench.test.", dns.TypeA)
		if _, _, err := c.Exchange(m, addr); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the upstream process never answered on %s", addr)
}

// waitBlocking waits until s answers NXDOMAIN for the blocked name.
func waitBlocking(s *server, blocked string) error {
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	addr := net.JoinHostPort(s.addr, strconv.Itoa(s.port))
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(blocked), dns.TypeA)
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeNameError {
			return nil
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s never blocked %s:\n%s", s.name, blocked, s.log.String())
}

// latencies measures sequential round trips per answer kind: the median
// and p99 of each server, and of the upstream asked directly. The cached
// kind is asked once before it is measured (warming: the names are then in
// every server's cache whatever ran before), and measured more than a
// second later, so that a cached answer shows as one: its TTL is below the
// upstream's 3600 s (latency.hits counts them; the upstream's own are 0).
type latency struct {
	med, p99 time.Duration
	hits, n  int
	// switches is the server's context switches (every thread's, both
	// kinds) per query: how many times a thread of it went to sleep or was
	// woken for one sequential query.
	switches float64
}

// latencyKinds are the names each kind of sequential query asks.
func latencyKinds(names []string) map[string]func(i int) string {
	return map[string]func(i int) string{
		"forwarded": func(i int) string { return fmt.Sprintf("lat%d.fwd.bench.test.", i) },
		"cached":    func(i int) string { return fmt.Sprintf("h%d.hot.bench.test.", i%5000) },
		"blocked":   func(i int) string { return dns.Fqdn(names[(i*7919)%len(names)]) },
	}
}

func latencies(servers []*server, names []string) map[string]map[string]latency {
	out := map[string]map[string]latency{}
	targets := append([]*server{{name: "upstream", addr: "127.0.0.1", port: 25400}, {name: "in-process", addr: "127.0.0.1", port: 25401}}, servers...)
	kinds := latencyKinds(names)
	for _, s := range targets {
		probe(net.JoinHostPort(s.addr, strconv.Itoa(s.port)), kinds["cached"], 3000)
	}
	time.Sleep(1100 * time.Millisecond)
	for _, kind := range []string{"forwarded", "cached", "blocked"} {
		out[kind] = map[string]latency{}
		for _, s := range targets {
			cs := -1
			var before map[string][2]int
			if s.cmd != nil {
				cs = ctxSwitches(s.pid())
				before = threadSwitches(s.pid())
			}
			l := probe(net.JoinHostPort(s.addr, strconv.Itoa(s.port)), kinds[kind], 3000)
			if cs >= 0 && l.n > 0 {
				l.switches = float64(ctxSwitches(s.pid())-cs) / float64(l.n)
				if os.Getenv("BENCH_THREADS") != "" {
					printThreads(s.name+" "+kind, before, threadSwitches(s.pid()), l.n)
				}
			}
			out[kind][s.name] = l
		}
	}
	return out
}

// threadSwitches reads each thread's voluntary and involuntary context
// switches (BENCH_THREADS: which thread of a server switches per query).
func threadSwitches(pid int) map[string][2]int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	out := map[string][2]int{}
	for _, t := range tasks {
		b, err := os.ReadFile(t + "/status")
		if err != nil {
			continue
		}
		var c [2]int
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				switch k {
				case "voluntary_ctxt_switches":
					c[0] = n
				case "nonvoluntary_ctxt_switches":
					c[1] = n
				}
			}
		}
		out[filepath.Base(t)] = c
	}
	return out
}

// printThreads prints, per thread, its switches per query between two
// readings and where it sleeps now (wchan).
func printThreads(what string, a, b map[string][2]int, n int) {
	for tid, cb := range b {
		ca := a[tid]
		v, nv := float64(cb[0]-ca[0])/float64(n), float64(cb[1]-ca[1])/float64(n)
		if v+nv < 0.01 {
			continue
		}
		w, _ := os.ReadFile("/proc/" + tid + "/wchan")
		fmt.Fprintf(os.Stderr, "threads %s: tid %s voluntary %.2f involuntary %.2f wchan %s\n", what, tid, v, nv, w)
	}
}

// ctxSwitches sums the context switches of every thread of pid.
func ctxSwitches(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	n := 0
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				c, _ := strconv.Atoi(strings.TrimSpace(v))
				n += c
			}
		}
	}
	return n
}

func probe(addr string, name func(int) string, n int) latency {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return latency{}
	}
	defer c.Close()
	buf := make([]byte, 1500)
	var d []time.Duration
	hits := 0
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion(name(i), dns.TypeA)
		wire, _ := m.Pack()
		start := time.Now()
		if _, err := c.Write(wire); err != nil {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			continue
		}
		d = append(d, time.Since(start))
		var r dns.Msg
		if r.Unpack(buf[:k]) == nil && len(r.Answer) > 0 && r.Answer[0].Header().Ttl < 3600 && r.Answer[0].Header().Ttl > 0 {
			hits++
		}
	}
	if len(d) == 0 {
		return latency{}
	}
	slices.Sort(d)
	return latency{med: d[len(d)/2], p99: d[len(d)*99/100], hits: hits, n: len(d)}
}

func report(servers []*server, workloads []string, results map[string]map[string][]sample,
	lat map[string]map[string]latency, idle, loadPeak, peak map[string]int, nw *server) {
	med := func(xs []sample, f func(sample) float64) float64 {
		v := make([]float64, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Println()
	fmt.Println("Throughput and CPU (medians over the rounds; ratio = netward / reference, from the same round's runs)")
	fmt.Printf("%-8s %-8s %9s %8s %8s %11s %13s %16s %7s\n", "workload", "server", "q/s", "÷dnsmasq", "÷unbound", "CPU µs/q", "dnsperf µs/q", "lost@80%", "drops")
	for _, w := range workloads {
		for _, s := range servers {
			xs := results[w][s.name]
			// Ratios per round (same round, side by side), then the median.
			ratio := func(ref string) string {
				if s.name != "netward" || len(results[w][ref]) < len(xs) {
					return ""
				}
				var rs []sample
				for i := range xs {
					rs = append(rs, sample{qps: xs[i].qps / results[w][ref][i].qps})
				}
				return fmt.Sprintf("%.2f×", med(rs, func(x sample) float64 { return x.qps }))
			}
			fmt.Printf("%-8s %-8s %9.0f %8s %8s %11.1f %13.1f %16s %7.0f\n", w, s.name,
				med(xs, func(x sample) float64 { return x.qps }), ratio("dnsmasq"), ratio("unbound"),
				med(xs, func(x sample) float64 { return x.cpuPerQ }), med(xs, func(x sample) float64 { return x.perfPerQ }),
				fmt.Sprintf("%.0f/%.0f", med(xs, func(x sample) float64 { return float64(x.lost80) }), med(xs, func(x sample) float64 { return float64(x.sent80) })),
				med(xs, func(x sample) float64 { return float64(x.serverDrops) }))
		}
	}
	fmt.Println()
	fmt.Println("Latency, sequential queries (3,000 each): median / p99, and the median added over asking the upstream directly")
	up := lat["forwarded"]["upstream"]
	inp := lat["forwarded"]["in-process"]
	fmt.Printf("upstream asked directly: %v / %v (the same upstream inside the harness's process: %v / %v)\n", us(up.med), us(up.p99), us(inp.med), us(inp.p99))
	for _, kind := range []string{"forwarded", "cached", "blocked"} {
		for _, s := range servers {
			l := lat[kind][s.name]
			hits := ""
			if kind == "cached" {
				hits = fmt.Sprintf("   (%d/%d answered from the cache)", l.hits, l.n)
			}
			fmt.Printf("%-9s %-8s %8s / %8s   added %+d µs   %.1f context switches/query%s\n", kind, s.name, us(l.med), us(l.p99), (l.med - up.med).Microseconds(), l.switches, hits)
		}
	}
	fmt.Println()
	fmt.Println("RSS (MiB): idle with the list loaded / peak under the load above / peak while loading")
	for _, s := range servers {
		fmt.Printf("%-8s %6.1f / %6.1f / %6.1f\n", s.name, mib(idle[s.name]), mib(peak[s.name]), mib(loadPeak[s.name]))
	}
	if st := procStatus(nw.pid()); st["RssFile"] > 0 {
		fmt.Printf("netward now: RssAnon %.1f MiB, RssFile %.1f MiB (the binary's pages)\n", mib(st["RssAnon"]), mib(st["RssFile"]))
	}
}

// bigName is the i-th synthetic name of the footprint run's list: under
// the .example TLD reserved for documentation (RFC 2606), spread over 1,000
// second-level names.
func bigName(i int) string { return fmt.Sprintf("d%d.s%d.example", i, i%1000) }

// bigRun starts netward (with -ab's env, when given) with o.big indicators
// (the list plus synthetic names) and reports its RSS idle, while loading,
// and under load.
func bigRun(ctx context.Context, o options, names []string, files *queries, label string, env ...string) error {
	p := filepath.Join(o.work, "big-list.txt")
	if _, err := os.Stat(p); err != nil {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(f)
		for i := range o.big {
			if i < len(names) {
				fmt.Fprintln(bw, names[i])
			} else {
				fmt.Fprintln(bw, bigName(i))
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	nw, err := startNetward(ctx, o, "nwbig", p, env...)
	if err != nil {
		return err
	}
	defer stop(nw)
	last := bigName(o.big - 1) // blocked once the whole list is loaded
	if o.big <= len(names) {
		last = names[o.big-1]
	}
	if err := waitBlocking(nw, last); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	st := procStatus(nw.pid())
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", nw.pid()), []byte("5"), 0)
	for _, w := range []string{"mix", "blocked"} {
		f, err := files.file(w)
		if err != nil {
			return err
		}
		if _, err := dnsperf(o, nw, f, 0, o.secs); err != nil {
			return err
		}
	}
	fmt.Printf("\nnetward%s with %d indicators: RSS idle %.1f MiB, peak under load %.1f MiB, peak while loading %.1f MiB\n",
		label, o.big, mib(st["VmRSS"]), mib(procStatus(nw.pid())["VmHWM"]), mib(st["VmHWM"]))
	return nil
}

func stop(s *server) {
	if s == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// procCPU is the user+system CPU time of pid and its threads so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (in parentheses, which may hold spaces).
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fs[11], 10, 64)       // utime, field 14
	st, _ := strconv.ParseInt(fs[12], 10, 64)       // stime, field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// procStatus returns the kB fields of /proc/PID/status.
func procStatus(pid int) map[string]int {
	out := map[string]int{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.HasSuffix(v, "kB") {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(v, "kB")))
		out[k] = n
	}
	return out
}

// udpDrops sums the drops of the UDP sockets bound to port (IPv4).
func udpDrops(port int) int {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0
	}
	suffix := fmt.Sprintf(":%04X", port)
	total := 0
	for _, l := range strings.Split(string(b), "\n")[1:] {
		fs := strings.Fields(l)
		if len(fs) < 13 || !strings.HasSuffix(fs[1], suffix) {
			continue
		}
		d, _ := strconv.Atoi(fs[len(fs)-1])
		total += d
	}
	return total
}

func nproc() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return bytes.Count(b, []byte("\nprocessor")) + 1
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

func mib(kb int) float64 { return float64(kb) / 1024 }

// abRun measures two variants of netward alone (the shipped binary; B with
// the environment variables of -ab), one after the other in every round —
// two agents capturing DNS in one namespace would take each other's
// queries — the order swapped every round. Each start is fresh: RSS idle
// after loading, then the peak over the round's workloads (VmHWM reset).
// Ratios B ÷ A are taken per round, then the median.
func abRun(ctx context.Context, o options, names []string, files *queries) error {
	variants := []struct {
		name string
		env  []string
	}{{"A", nil}, {"B", strings.Fields(o.ab)}}
	var workloads []string
	for _, w := range []string{"mix", "allowed", "blocked", "cached"} {
		if pick(o.workloads, w) {
			workloads = append(workloads, w)
		}
	}
	fmt.Printf("bench-dns A/B: %d cores, %d blocked names, %d rounds × %d s per dnsperf run (-c %d -q %d); A as shipped, B with %s\n",
		nproc(), len(names), o.rounds, o.secs, o.clients, o.outstand, o.ab)
	res := map[string]map[string][]sample{}  // [variant][workload], one per round
	rss := map[string][][2]int{}             // [variant] idle, peak per round
	lat := map[string]map[string][]latency{} // [variant][kind]: added median, p99, per round
	for _, v := range variants {
		res[v.name] = map[string][]sample{}
	}
	for r := range o.rounds {
		for i := range variants {
			v := variants[(i+r)%2]
			s, err := startNetward(ctx, o, "nw"+v.name, o.list, v.env...)
			if err != nil {
				return err
			}
			if err := waitBlocking(s, names[0]); err != nil {
				stop(s)
				return err
			}
			time.Sleep(2 * time.Second)
			idle := procStatus(s.pid())["VmRSS"]
			_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid()), []byte("5"), 0)
			for _, w := range workloads {
				sm, err := measure(o, s, files, w)
				if err != nil {
					stop(s)
					return fmt.Errorf("%s %s: %w", v.name, w, err)
				}
				res[v.name][w] = append(res[v.name][w], sm)
				fmt.Fprintf(os.Stderr, "round %d %-8s %s %7.0f q/s  cpu %5.1f µs/q  dnsperf %5.1f µs/q  lost@80%% %d/%d\n",
					r+1, w, v.name, sm.qps, sm.cpuPerQ, sm.perfPerQ, sm.lost80, sm.sent80)
			}
			rss[v.name] = append(rss[v.name], [2]int{idle, procStatus(s.pid())["VmHWM"]})
			l := latencies([]*server{s}, names)
			for kind, byServer := range l {
				if lat[v.name] == nil {
					lat[v.name] = map[string][]latency{}
				}
				nw, up := byServer["netward"], l["forwarded"]["upstream"]
				lat[v.name][kind] = append(lat[v.name][kind], latency{med: nw.med - up.med, p99: nw.p99, hits: nw.hits, n: nw.n, switches: nw.switches})
			}
			fmt.Fprintf(os.Stderr, "round %d latency %s: added forwarded %+d µs, cached %+d µs (%d/%d from the cache), blocked %+d µs; upstream direct %v (in the harness's process %v)\n",
				r+1, v.name, (l["forwarded"]["netward"].med - l["forwarded"]["upstream"].med).Microseconds(),
				(l["cached"]["netward"].med - l["forwarded"]["upstream"].med).Microseconds(), l["cached"]["netward"].hits, l["cached"]["netward"].n,
				(l["blocked"]["netward"].med - l["forwarded"]["upstream"].med).Microseconds(), us(l["forwarded"]["upstream"].med), us(l["forwarded"]["in-process"].med))
			stop(s)
		}
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	fmt.Println()
	fmt.Printf("%-8s %9s %9s %7s %9s %9s %7s\n", "workload", "A q/s", "B q/s", "B÷A", "A µs/q", "B µs/q", "B÷A")
	for _, w := range workloads {
		var qa, qb, ca, cb, rq, rc []float64
		for i := range res["A"][w] {
			a, b := res["A"][w][i], res["B"][w][i]
			qa, qb, ca, cb = append(qa, a.qps), append(qb, b.qps), append(ca, a.cpuPerQ), append(cb, b.cpuPerQ)
			rq, rc = append(rq, b.qps/a.qps), append(rc, b.cpuPerQ/a.cpuPerQ)
		}
		fmt.Printf("%-8s %9.0f %9.0f %6.2f× %9.1f %9.1f %6.2f×\n", w, med(qa), med(qb), med(rq), med(ca), med(cb), med(rc))
	}
	fmt.Println("Latency, sequential queries (3,000 per kind, per round): median added over the upstream asked directly in the same round / p99, medians over the rounds; B−A per round")
	for _, kind := range []string{"forwarded", "cached", "blocked"} {
		var aa, ba, ap, bp, diff, as, bs []float64
		for i := range lat["A"][kind] {
			a, b := lat["A"][kind][i], lat["B"][kind][i]
			as, bs = append(as, a.switches), append(bs, b.switches)
			aa, ba = append(aa, float64(a.med.Microseconds())), append(ba, float64(b.med.Microseconds()))
			ap, bp = append(ap, float64(a.p99.Microseconds())), append(bp, float64(b.p99.Microseconds()))
			diff = append(diff, float64((b.med - a.med).Microseconds()))
		}
		if len(aa) == 0 {
			continue
		}
		fmt.Printf("%-9s A %+4.0f µs / p99 %4.0f / %.1f cs/q   B %+4.0f µs / p99 %4.0f / %.1f cs/q   B−A %+4.0f µs (rounds %v)\n", kind,
			med(slices.Clone(aa)), med(ap), med(as), med(slices.Clone(ba)), med(bp), med(bs), med(slices.Clone(diff)), diff)
	}
	fmt.Println("RSS (MiB), medians: idle with the list loaded / peak under the load above")
	for _, v := range variants {
		var idle, peak []float64
		for _, x := range rss[v.name] {
			idle, peak = append(idle, mib(x[0])), append(peak, mib(x[1]))
		}
		fmt.Printf("%s %6.1f / %6.1f   (peaks %v)\n", v.name, med(idle), med(slices.Clone(peak)), peak)
	}
	if o.big > 0 {
		for _, v := range variants {
			if err := bigRun(ctx, o, names, files, " "+v.name, v.env...); err != nil {
				return err
			}
		}
	}
	return nil
}
