//go:build linux

package inspecte2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netward/netward/filter/inspect"
	"github.com/netward/netward/internal/e2e"
)

// inspBenchServe accepts on TCP 443, reads one ClientHello and answers one
// byte: the smallest exchange that needs the inspector's name decision.
func inspBenchServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", ":443")
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	fmt.Println("READY")
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 0, 4096)
			tmp := make([]byte, 4096)
			for {
				n, err := c.Read(tmp)
				buf = append(buf, tmp[:n]...)
				if _, herr := inspect.HelloLength(buf); herr == nil {
					_, _ = c.Write([]byte{'x'})
					// Let the client close first (with a reset, see
					// inspConnect): no TIME_WAIT piles up on either side,
					// so later runs are not slowed by port reuse.
					_, _ = c.Read(tmp)
					return
				} else if !errors.Is(herr, inspect.ErrNeedMore) || err != nil {
					return
				}
			}
		}()
	}
}

// inspInNetns runs f on a thread switched into the namespace at path, so
// every socket f creates lives there. The thread is not reused afterwards
// (the goroutine ends locked), so no other goroutine inherits the namespace.
func inspInNetns(path string, f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}

// inspConnect is one connection setup as a browser starts it: connect,
// send the ClientHello, wait for the server's first byte.
func inspConnect(d *net.Dialer, hello []byte) error {
	c, err := d.Dial("tcp", inspSrvAddr+":443")
	if err != nil {
		return err
	}
	// Close with a reset: tens of thousands of connections must not exhaust
	// the ephemeral ports in TIME_WAIT and bias the later runs.
	_ = c.(*net.TCPConn).SetLinger(0)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(hello); err != nil {
		return err
	}
	var one [1]byte
	_, err = io.ReadFull(c, one[:])
	return err
}

// BenchmarkInspectConnect measures connection setup (connect + ClientHello +
// first server byte) in a network namespace pair, side by side without and
// with the inspector: "direct", then "queued" (an IP rule covering the
// server: the SYN and the ClientHello go through the queue), "iprules" (an
// IP rule elsewhere: only the ClientHello does) and "names" (no IP rules), each sequentially (ns/op is the setup latency;
// p50-µs its median) and with 8 concurrent clients (conn/s is the setup
// rate). scripts/bench-inspect.sh prints the ratios.
// Needs root; skipped otherwise.
func BenchmarkInspectConnect(b *testing.B) {
	e2e.Require(b, "nft")
	hello, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inspect", "curl-tls13.bin"))
	if err != nil {
		b.Fatal(err)
	}
	ep := e2e.NewNetns(b, "nwb-ep")
	inet := e2e.NewNetns(b, "nwb-net")
	e2e.Link(b, ep, []string{inspEndpoint + "/24"}, inet, []string{inspSrvAddr + "/24"})
	inspStart(b, inet, "benchsrv")
	nsPath := "/run/netns/" + ep.Name

	seq := func(b *testing.B) {
		lat := make([]time.Duration, 0, 4096)
		var ferr error
		if err := inspInNetns(nsPath, func() {
			d := &net.Dialer{Timeout: 3 * time.Second}
			for b.Loop() {
				t0 := time.Now()
				if err := inspConnect(d, hello); err != nil {
					ferr = err
					return
				}
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(t0))
				}
			}
		}); err != nil {
			b.Fatal(err)
		}
		if ferr != nil {
			b.Fatal(ferr)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	}
	par := func(b *testing.B) {
		const workers = 8
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		b.ResetTimer()
		t0 := time.Now()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- inspInNetns(nsPath, func() {
					d := &net.Dialer{Timeout: 3 * time.Second}
					for next.Add(1) <= int64(b.N) {
						if err := inspConnect(d, hello); err != nil {
							errs <- err
							return
						}
					}
				})
			}()
		}
		wg.Wait()
		el := time.Since(t0)
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/el.Seconds(), "conn/s")
	}

	b.Run("direct/seq", seq)
	b.Run("direct/par8", par)
	// "queued": an IP rule covers the server, so the SYN and the hello each
	// make a trip to userspace; "iprules": the policy's IP rule is for
	// another address, which the kernel set keeps out of the queue until the
	// hello; "names": no IP rules, only the hello goes.
	for _, mode := range []struct {
		name string
		env  string
	}{{"queued", "NWINS_IPRULES=0.0.0.0/0,::/0"}, {"iprules", "NWINS_IPRULES="}, {"names", "NWINS_NAMEPORTS_ONLY=1"}} {
		agent := inspStart(b, ep, "agent", "NWINS_QUIET=1", mode.env, "NWINS_PROF="+os.Getenv("NWINS_PROF"),
			"GOMAXPROCS="+os.Getenv("NWINS_PROCS"), "NWINS_QUEUES="+os.Getenv("NWINS_QUEUES"))
		b.Run(mode.name+"/seq", seq)
		b.Run(mode.name+"/par8", par)
		_ = agent.Process.Signal(syscall.SIGTERM)
		_ = agent.Wait()
	}
}
