//go:build pprof

package main

// Built only with -tags pprof (scripts/bench-dns.sh BENCH_PROFILE=1): the
// profiling aid behind issue 21's footprint work. NETWARD_PPROF=ADDR serves
// net/http/pprof on ADDR (loopback only). The product binary never has it.

import (
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("NETWARD_PPROF")
	if addr == "" {
		return
	}
	if h, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(h).IsLoopback() {
		panic("NETWARD_PPROF must be a loopback address:port")
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
