//go:build ignore

// capture records the first bytes real clients send, for the filter/inspect
// tests and fuzz seeds. Run from the repository root:
//
//	go run testdata/inspect/capture.go
//
// It listens on 127.0.0.1 only, starts each client against that listener and
// writes what the listener read. See README.md in this directory.
package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/quic-go/quic-go"
)

const dir = "testdata/inspect"

func main() {
	tcp("curl-tls13.bin", func(port int) *exec.Cmd {
		return exec.Command("curl", "-sk", "--max-time", "2", "--tlsv1.3", "--resolve", fmt.Sprintf("www.example.com:%d:127.0.0.1", port), fmt.Sprintf("https://www.example.com:%d/", port))
	}, nil)
	tcp("openssl-tls12.bin", func(port int) *exec.Cmd {
		return exec.Command("openssl", "s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", port), "-servername", "blocked.example.org", "-tls1_2")
	}, nil)
	tcp("openssl-tls13.bin", func(port int) *exec.Cmd {
		return exec.Command("openssl", "s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", port), "-servername", "a.example.net", "-tls1_3", "-alpn", "h2,http/1.1")
	}, nil)
	tcp("curl-http.bin", func(port int) *exec.Cmd {
		return exec.Command("curl", "-s", "--max-time", "2", "--resolve", fmt.Sprintf("www.example.com:%d:127.0.0.1", port), fmt.Sprintf("http://www.example.com:%d/blocked/path?q=1", port))
	}, nil)
	tcp("go-mlkem.bin", nil, func(addr string) {
		// Go 1.24+ offers X25519MLKEM768 by default; list it explicitly so the
		// capture does not depend on the default.
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "pq.example.com",
			CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519}, InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
	})
	udp("quicgo-v1.bin", quic.Version1)
	udp("quicgo-v2.bin", quic.Version2)
}

// tcp records the first 64 KiB (or 1 s of) bytes one client connection sends.
func tcp(name string, cmd func(port int) *exec.Cmd, dial func(addr string)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		var all []byte
		buf := make([]byte, 65536)
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- all
	}()
	if cmd != nil {
		c := cmd(port)
		c.Stdin = nil
		_ = c.Start()
		defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	} else {
		go dial(ln.Addr().String())
	}
	b := <-got
	write(name, b)
}

// udp records the datagrams a quic-go client sends in its first second,
// each prefixed with its 2-byte big-endian length.
func udp(name string, v quic.Version) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	go func() {
		_, _ = quic.DialAddr(ctx, pc.LocalAddr().String(), &tls.Config{ServerName: "quic.example.com", NextProtos: []string{"h3"}},
			&quic.Config{Versions: []quic.Version{v}})
	}()
	var out []byte
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	for i := 0; i < 4; i++ {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		out = binary.BigEndian.AppendUint16(out, uint16(n))
		out = append(out, buf[:n]...)
	}
	write(name, out)
}

func write(name string, b []byte) {
	if len(b) == 0 {
		log.Fatalf("%s: nothing captured", name)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d bytes\n", name, len(b))
}
