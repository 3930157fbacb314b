package dnsproxy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The general path bounds its goroutines on the CPU, not those waiting for
// an upstream (generalUDP, issue 21): queries held by a slow upstream must
// not hold back the ones after them. The upstream here answers nothing
// until it holds every query at once, far more than Proxy.runnable; a
// proxy that served them a few at a time would see them time out
// (SERVFAIL) instead.
func TestGeneralPathWaitsConcurrently(t *testing.T) {
	const n = 32
	up := newTestUpstream(t)
	var mu sync.Mutex
	names := map[string]bool{}
	all := make(chan struct{})
	up.setHook(func(w dns.ResponseWriter, r *dns.Msg) bool {
		mu.Lock()
		names[strings.ToLower(r.Question[0].Name)] = true
		if len(names) == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second): // past the proxy's timeout
		}
		return false // answered from the (empty) zone: NXDOMAIN
	})
	p, addr := startProxy(t, Config{Upstreams: []string{up.addr}, Decider: newDecider(t), Timeout: 5 * time.Second})
	if p.runnable >= n {
		t.Fatalf("runnable = %d: the test needs more queries than that", p.runnable)
	}
	rcodes := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("q%d.example.", i), dns.TypeA)
			c := &dns.Client{Timeout: 8 * time.Second}
			r, _, err := c.Exchange(m, addr)
			if err != nil {
				errs[i] = err
				return
			}
			rcodes[i] = r.Rcode
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || rcodes[i] != dns.RcodeNameError {
			t.Errorf("q%d.example: rcode %s, err %v; want NXDOMAIN (the upstream answers once it holds all %d)",
				i, dns.RcodeToString[rcodes[i]], errs[i], n)
		}
	}
}
