//go:build linux

// Command dnsbench is a profiling aid for the DNS proxy package alone (the
// figures of `make bench-dns` come from the real agent: scripts/benchdns):
// a local upstream that answers every name, netward's filtering proxy with a
// blocklist loaded as Block indicators (-cpuprofile), query-file generation
// for dnsperf, a sequential latency probe, and a memory probe with many
// indicators. It talks to loopback only.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/scripts/internal/blocklist"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dnsbench upstream|proxy|queries|latency|rss [flags]")
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "upstream":
		err = upstream(args)
	case "proxy":
		err = proxy(args)
	case "queries":
		err = queries(args)
	case "latency":
		err = latency(args)
	case "rss":
		err = rss(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// upstream answers every A query with 192.0.2.1 (TTL 3600) and every other
// type with NODATA, over UDP.
func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:25400", "address")
	_ = fs.Parse(args)
	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return err
	}
	a := net.IPv4(192, 0, 2, 1).To4()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if q.Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: a}}
		}
		_ = w.WriteMsg(m)
	})}
	ctx, cancel := signalContext()
	defer cancel()
	go func() { <-ctx.Done(); _ = srv.Shutdown() }()
	fmt.Println("READY")
	return srv.ActivateAndServe()
}

// proxy runs netward's filtering proxy with every blocklist name as a Block
// indicator. On SIGTERM it prints the CPU time and peak RSS it used.
func proxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:25401", "address")
	up := fs.String("upstream", "127.0.0.1:25400", "upstream")
	list := fs.String("blocklist", "", "domain list")
	cache := fs.Int("cache", -1, "cache entries (-1: no cache)")
	inflight := fs.Int("inflight", 4096, "in-flight bound")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here")
	_ = fs.Parse(args)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	names, err := blocklist.Read(*list)
	if err != nil {
		return err
	}
	rules := make([]filter.Rule, 0, len(names))
	for i, n := range names {
		rules = append(rules, filter.Rule{Value: n, Type: filter.TypeDomain, Action: filter.Block, ID: fmt.Sprint(i)})
	}
	pol, err := filter.Compile(rules)
	if err != nil {
		return err
	}
	dec := filter.NewDecisionPoint(filter.Settings{}, nil)
	dec.Set(pol, filter.Settings{})
	p, err := dnsproxy.New(dnsproxy.Config{Listen: []string{*listen}, Upstreams: []string{*up}, Decider: dec,
		CacheSize: *cache, MaxInFlight: *inflight, Sink: netip.MustParseAddr("127.0.0.154")})
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		return err
	}
	fmt.Printf("READY %d indicators\n", pol.Len())
	err = <-done
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	st := p.Stats()
	fmt.Printf("STATS queries=%d cpu=%s maxrss_kb=%d refused=%d servfail=%d\n", st.Queries, cpu, ru.Maxrss, st.Refused, st.ServFail)
	return err
}

// queries writes a dnsperf data file: n names, a fraction blocked (taken
// from the blocklist), the rest unique allowed names.
func queries(args []string) error {
	fs := flag.NewFlagSet("queries", flag.ExitOnError)
	list := fs.String("blocklist", "", "domain list")
	n := fs.Int("n", 100000, "queries")
	blocked := fs.Float64("blocked", 0.3, "fraction of blocked names")
	out := fs.String("out", "", "file")
	_ = fs.Parse(args)
	names, err := blocklist.Read(*list)
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range *n {
		if r.Float64() < *blocked {
			fmt.Fprintf(w, "%s A\n", names[r.IntN(len(names))])
		} else {
			fmt.Fprintf(w, "host%d.allowed-bench.test A\n", i)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// latency sends n sequential A queries (distinct names, so no cache helps)
// and prints the median round trip in microseconds.
func latency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	server := fs.String("server", "127.0.0.1:25400", "server")
	n := fs.Int("n", 3000, "queries")
	prefix := fs.String("prefix", "lat", "name prefix (distinct per run)")
	_ = fs.Parse(args)
	c, err := net.Dial("udp", *server)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	var d []time.Duration
	for i := range *n {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("%s%d.allowed-bench.test.", *prefix, i), dns.TypeA)
		wire, _ := m.Pack()
		start := time.Now()
		if _, err := c.Write(wire); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err != nil {
			continue
		}
		d = append(d, time.Since(start))
	}
	if len(d) == 0 {
		return fmt.Errorf("no answers from %s", *server)
	}
	slices.Sort(d)
	fmt.Printf("%d\n", d[len(d)/2].Microseconds())
	return nil
}

// rss compiles n synthetic Block indicators and reports the process's
// memory with them loaded (the policy kept alive).
func rss(args []string) error {
	fs := flag.NewFlagSet("rss", flag.ExitOnError)
	n := fs.Int("n", 1_000_000, "indicators")
	_ = fs.Parse(args)
	rules := make([]filter.Rule, *n)
	for i := range rules {
		rules[i] = filter.Rule{Value: fmt.Sprintf("d%d.example%d.com", i, i%1000), Type: filter.TypeDomain, Action: filter.Block, ID: fmt.Sprint(i)}
	}
	pol, err := filter.Compile(rules)
	if err != nil {
		return err
	}
	rules = nil
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("indicators=%d heap_mb=%.0f maxrss_mb=%.0f\n", pol.Len(), float64(ms.HeapAlloc)/(1<<20), float64(ru.Maxrss)/1024)
	runtime.KeepAlive(pol)
	return nil
}
