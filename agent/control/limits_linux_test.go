package control

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netward/netward/internal/e2e"
)

// TestControlFloodChild is the child of TestControlLimitsPerUser, run as
// another uid: it opens NETWARD_FLOOD_CONNS keep-alive connections and
// NETWARD_FLOOD_FOLLOWS follow streams, prints each one's status, says
// "ready", waits for a line on stdin, then reports how many held
// connections the server closed as idle.
func TestControlFloodChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of TestControlLimitsPerUser")
	}
	sock := os.Getenv("NETWARD_FLOOD_SOCKET")
	nConns, _ := strconv.Atoi(os.Getenv("NETWARD_FLOOD_CONNS"))
	nFollows, _ := strconv.Atoi(os.Getenv("NETWARD_FLOOD_FOLLOWS"))
	var held []net.Conn
	open := func(kind, path string) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			fmt.Printf("%s dial-error\n", kind)
			return
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: netward\r\n\r\n", path)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			fmt.Printf("%s error\n", kind)
			c.Close()
			return
		}
		fmt.Printf("%s %d\n", kind, resp.StatusCode)
		if kind == "conn" && resp.StatusCode == 200 {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = c.SetDeadline(time.Time{})
			held = append(held, c) // keep-alive, idle from now
			return
		}
		if kind == "follow" && resp.StatusCode == 200 {
			held = append(held, nil) // the stream stays open
			return
		}
		c.Close()
	}
	for range nConns {
		open("conn", "/v1/whoami")
	}
	for range nFollows {
		open("follow", "/v1/events?follow=1")
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	closed := 0
	for _, c := range held {
		if c == nil {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	fmt.Printf("idle-closed %d\n", closed)
	os.Exit(0)
}

type okBackend struct{ crashBackend }

func (okBackend) Check(q, user string) (CheckResult, error) { return CheckResult{Query: q}, nil }

// floodChild starts TestControlFloodChild as uid.
func floodChild(t *testing.T, bin, sock string, uid, conns, follows int) (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
	t.Helper()
	_, args := e2e.ChildArgs("TestControlFloodChild")
	cmd := exec.Command(bin, args...)
	cmd.Env = e2e.ChildEnv("TestControlFloodChild", "NETWARD_FLOOD_SOCKET="+sock,
		"NETWARD_FLOOD_CONNS="+strconv.Itoa(conns), "NETWARD_FLOOD_FOLLOWS="+strconv.Itoa(follows))
	cmd.Dir = "/"
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, in, bufio.NewScanner(out)
}

// untilReady collects "kind status" counts up to the child's "ready".
func untilReady(t *testing.T, sc *bufio.Scanner) map[string]int {
	t.Helper()
	got := map[string]int{}
	for sc.Scan() {
		if sc.Text() == "ready" {
			return got
		}
		got[sc.Text()]++
	}
	t.Fatalf("child ended before ready: %v", got)
	return nil
}

// TestControlLimitsPerUser: a local user cannot lock root (or other users)
// out of the control API. uid 65534 opens 20 keep-alive connections and 6
// follow streams: it gets its 8 connections, of which 4 may follow, the rest
// are answered 503/429 at once; meanwhile root and another user (uid 65533)
// are served, and the user's idle connections are closed after the idle
// timeout (issue 20 #1: 64 connections from one user made root's
// `netward bypass --revoke` wait 30 s and exit 3).
func TestControlLimitsPerUser(t *testing.T) {
	e2e.Require(t)
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "netward.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Backend: okBackend{}, Events: NewRing(0), IdleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "child.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}

	// 20 plain connections, then 6 follow streams.
	_, in, sc := floodChild(t, bin, sock, 65534, 20, 6)
	got := untilReady(t, sc)
	// Plain connections come first: 8 served, 12 refused; then every
	// follow is refused since the 8 slots are held.
	if got["conn 200"] != 8 || got["conn 503"] != 12 || got["follow 503"] != 6 {
		t.Errorf("uid 65534's connections: %v, want 8 served and the rest 503", got)
	}

	// Root is served while the user holds every slot it may.
	c := NewClient(sock)
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer rcancel()
	if _, err := c.Status(rctx); err != nil {
		t.Errorf("root's status while a user floods: %v", err)
	}
	// Another user too, and its follow streams are capped on their own.
	_, in2, sc2 := floodChild(t, bin, sock, 65533, 1, 6)
	got2 := untilReady(t, sc2)
	if got2["conn 200"] != 1 || got2["follow 200"] != 4 || got2["follow 429"] != 2 {
		t.Errorf("uid 65533's connections: %v, want 1 served, 4 follows and 2 refused with 429", got2)
	}
	if _, err := c.Status(rctx); err != nil {
		t.Errorf("root's status while two users flood: %v", err)
	}
	// The user's idle keep-alive connections are closed by the server.
	fmt.Fprintln(in, "go")
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "idle-closed "); ok {
			if v != "8" {
				t.Errorf("idle connections closed by the server: %s of 8", v)
			}
		}
	}
	fmt.Fprintln(in2, "go")
}
