//go:build linux

package dnse2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/dnsproxy"
	"github.com/netward/netward/filter/hostnet"
	"github.com/netward/netward/internal/e2e"
)

// The test binary re-executes itself inside a namespace (ip netns exec) to
// run a helper: the "internet" authoritative server, the proxy with
// capture, or the hostile client. helperEnv selects which.
const helperEnv = "NETWARD_DNSE2E_HELPER"

// zone is what the internet's authoritative server answers.
var zone = []string{
	"allowed.test. 300 IN A 192.0.2.10",
	"allowed.test. 300 IN AAAA 2001:db8::10",
	"audited.test. 300 IN A 192.0.2.11",
	"bad.test. 300 IN A 192.0.2.66",
	"bad.test. 300 IN AAAA 2001:db8::66",
	"www.bad.test. 300 IN A 192.0.2.67",
	"warned.test. 300 IN A 192.0.2.77",
	"alias.test. 300 IN CNAME www.bad.test.",
	"ech.test. 300 IN HTTPS 1 . alpn=h2 ech=AEX+DQBB",
	"later.test. 300 IN A 192.0.2.88",
}

// testRules is the policy of the in-process proxy helper.
var testRules = []filter.Rule{
	{Value: "bad.test", Type: filter.TypeDomain, Action: filter.Block, ID: "101"},
	{Value: "warned.test", Type: filter.TypeDomain, Action: filter.Warn, ID: "102"},
	{Value: "audited.test", Type: filter.TypeDomain, Action: filter.Audit, ID: "103"},
}

func TestMain(m *testing.M) { os.Exit(e2e.Main(m)) }

// TestHelperProcess is the child process of the suites (e2e.ChildCmd): the
// mode in helperEnv says which helper it is.
func TestHelperProcess(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of the DNS suites")
	}
	mode := os.Getenv(helperEnv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch mode {
	case "auth":
		err = runAuth(ctx)
	case "proxy":
		err = runProxy(ctx)
	case "cleanup":
		if err = hostnet.Cleanup(); err == nil {
			fmt.Println("CLEANUP-OK")
		}
	case "hostile":
		err = runHostile(os.Getenv("NETWARD_DNSE2E_TARGET"))
	case "probe":
		err = runProbe(ctx, os.Getenv("NETWARD_DNSE2E_TARGET"))
	default:
		err = fmt.Errorf("unknown helper %q", mode)
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runAuth(ctx context.Context) error {
	records := map[string][]dns.RR{}
	for _, z := range zone {
		rr, err := dns.NewRR(z)
		if err != nil {
			return err
		}
		k := rr.Header().Name + "/" + dns.TypeToString[rr.Header().Rrtype]
		records[k] = append(records[k], rr)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		for range 4 {
			if rrs := records[name+"/"+dns.TypeToString[q.Qtype]]; len(rrs) > 0 {
				m.Answer = append(m.Answer, rrs...)
				break
			}
			c := records[name+"/CNAME"]
			if len(c) == 0 {
				break
			}
			m.Answer = append(m.Answer, c...)
			name = c[0].(*dns.CNAME).Target
		}
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
			for k := range records {
				if strings.HasPrefix(k, name+"/") {
					m.Rcode = dns.RcodeSuccess
				}
			}
			soa, _ := dns.NewRR("test. 300 IN SOA ns.test. h.test. 1 3600 600 86400 30")
			m.Ns = []dns.RR{soa}
		}
		if o := r.IsEdns0(); o != nil {
			m.SetEdns0(1232, o.Do())
		}
		_ = w.WriteMsg(m)
	})
	var servers []*dns.Server
	for _, a := range []string{"192.0.2.1:53", "[2001:db8::1]:53"} {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: ln, Handler: h})
	}
	for _, s := range servers {
		go func() { _ = s.ActivateAndServe() }()
	}
	fmt.Println("READY")
	<-ctx.Done()
	for _, s := range servers {
		_ = s.Shutdown()
	}
	return nil
}

func runProxy(ctx context.Context) error {
	pol, err := filter.Compile(testRules)
	if err != nil {
		return err
	}
	dec := filter.NewDecisionPoint(filter.Settings{}, nil)
	dec.Set(pol, filter.Settings{})
	p, err := dnsproxy.New(dnsproxy.Config{
		Listen:          []string{"127.0.0.153:53", "[::1]:53"},
		Upstreams:       []string{"192.0.2.1"},
		UpstreamControl: hostnet.MarkControl(hostnet.AgentMark),
		Decider:         dec,
		Sink:            netip.MustParseAddr("127.0.0.154"),
		StripECH:        true,
		Capture:         true,
	})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		return err
	}
	capt, err := hostnet.NewDNSCapture(hostnet.DNSCaptureConfig{
		Target4: netip.MustParseAddrPort("127.0.0.153:53"), Target6: netip.MustParseAddrPort("[::1]:53")})
	if err != nil {
		return err
	}
	if err := capt.Install(); err != nil {
		return err
	}
	fmt.Println("READY")
	<-ctx.Done()
	if err := capt.Remove(); err != nil {
		return err
	}
	return <-done
}

// runHostile sends malformed and abusive datagrams to target (captured, so
// they reach the proxy), then checks a normal query still gets its answer.
func runHostile(target string) error {
	c, err := net.Dial("udp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion("allowed.test.", dns.TypeA)
	ok, _ := q.Pack()
	long := append(append([]byte(nil), ok[:12]...), 64)
	long = append(append(long, []byte(strings.Repeat("a", 64))...), 0, 0, 1, 0, 1)
	loop := append(append([]byte(nil), ok[:12]...), 0xC0, 12, 0, 1, 0, 1)
	giant := new(dns.Msg)
	giant.SetQuestion("allowed.test.", dns.TypeA)
	giant.SetEdns0(65535, true)
	for range 100 {
		giant.IsEdns0().Option = append(giant.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 300)})
	}
	gw, _ := giant.Pack()
	chaos := new(dns.Msg)
	chaos.SetQuestion("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	cw, _ := chaos.Pack()
	// Issue 14: the bare header with QDCOUNT=1 and no question.
	bare := []byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, p := range [][]byte{ok[:5], ok[:14], long, loop, gw, cw, {}, bare} {
		if _, err := c.Write(p); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	for range 5000 { // a flood
		_, _ = c.Write(ok)
	}
	// Still answering afterwards (retry: the flood fills socket buffers).
	cl := &dns.Client{Timeout: time.Second}
	for range 10 {
		r, _, err := cl.Exchange(q, target)
		if err == nil && len(r.Answer) == 1 {
			fmt.Println("STILL-ANSWERING")
			return nil
		}
	}
	return fmt.Errorf("no answer after hostile input")
}

// runProbe asks target for bad.test every millisecond (each try waits at
// most 5 ms for its answer) until one comes back NXDOMAIN — blocked — and
// prints "BLOCKED <unix ns>" then. It measures how soon a restarted agent
// enforces its stored set: before the agent's capture is in place the
// query reaches the real server and gets an address.
func runProbe(ctx context.Context, target string) error {
	q := new(dns.Msg)
	q.SetQuestion("bad.test.", dns.TypeA)
	c := &dns.Client{Timeout: 5 * time.Millisecond}
	fmt.Println("READY")
	for ctx.Err() == nil {
		r, _, err := c.Exchange(q, target)
		if err == nil && r.Rcode == dns.RcodeNameError {
			fmt.Println("BLOCKED", time.Now().UnixNano())
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return ctx.Err()
}

// helper starts a helper process in ns and waits for its READY line.
func helper(t *testing.T, ns string, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := startHelper(t, ns, mode, env...)
	return cmd
}

// startHelper is helper that also returns the lines the helper prints after
// READY (the channel is closed when it exits).
func startHelper(t *testing.T, ns string, mode string, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := (&e2e.Netns{Name: ns}).ChildCmd("TestHelperProcess", append([]string{helperEnv + "=" + mode}, env...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	ready := make(chan string, 1)
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		started := false
		for sc.Scan() {
			l := sc.Text()
			switch {
			case !started && (l == "READY" || strings.HasPrefix(l, "ERROR")):
				started = true
				ready <- l
			case started:
				select {
				case lines <- l:
				default:
				}
			}
		}
		if !started {
			close(ready)
		}
	}()
	select {
	case l := <-ready:
		if l != "READY" {
			t.Fatalf("helper %s: %s", mode, l)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("helper %s did not start", mode)
	}
	return cmd, lines
}
