package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// burnCPU is how much CPU each burner child uses.
const burnCPU = 300 * time.Millisecond

// cpuHelper is this test binary as a process of TestTreeCPUCountsChildren's
// tree: "parent" starts a burner and reaps it (its CPU is then only in the
// parent's cutime), then a "middle" process that starts a burner of its
// own and keeps it alive (CPU in live grandchildren), says "ready" and
// waits for its standard input to close. The parent uses next to no CPU
// itself.
func cpuHelper(role string) int {
	child := func(role string) *exec.Cmd {
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), "NETWARD_LOADTEST_CPU="+role)
		c.Stderr = os.Stderr
		return c
	}
	switch role {
	case "burn", "burn-exit":
		var ru syscall.Rusage
		x := 1
		for {
			for i := range 1 << 20 {
				x = x*31 + i
			}
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= burnCPU {
				break
			}
		}
		if role == "burn-exit" {
			return x & 0 // exits: reaped by its parent
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "middle":
		c := child("burn")
		return holdChild(c)
	case "parent":
		if err := child("burn-exit").Run(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c := child("middle")
		return holdChild(c)
	}
	return 2
}

// holdChild starts c, says ready once c is, and keeps it until this
// process's stdin closes.
func holdChild(c *exec.Cmd) int {
	in, err := startReady(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	in.Close()
	_ = c.Wait()
	return 0
}

// The database's CPU is its process tree's: a server's own time, its
// children's and grandchildren's while they run, and theirs once they
// exited (PostgreSQL's backends come and go with connections). A real
// tree: parent → burner (exited, reaped), parent → middle → burner (alive),
// each burner using burnCPU.
func TestTreeCPUCountsChildren(t *testing.T) {
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), "NETWARD_LOADTEST_CPU=parent")
	c.Stderr = os.Stderr
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); _ = c.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper tree: %q, %v", line, err)
	}
	tree, ok := treeCPU(c.Process.Pid)
	if !ok {
		t.Fatal("treeCPU: the parent was not found")
	}
	_, own, ok := procSample(c.Process.Pid)
	if !ok {
		t.Fatal("procSample: the parent was not found")
	}
	// Two burners; /proc counts in 10 ms ticks.
	want := 2*burnCPU.Seconds() - 0.03
	if tree-own < want {
		t.Errorf("tree CPU %.2f s, parent's own %.2f s: the children count %.2f s, want ≥ %.2f", tree, own, tree-own, want)
	}
	// Not the whole machine: nothing outside the tree (this test binary
	// is not under the parent).
	if self, ok := treeCPU(os.Getpid()); !ok || self < tree {
		t.Errorf("the test's own tree %.2f s (%v) is smaller than its child's %.2f s", self, ok, tree)
	}
	if _, ok := treeCPU(1 << 30); ok {
		t.Error("treeCPU of a pid that does not exist: ok")
	}
}

// startReady starts c and waits for its "ready" line.
func startReady(c *exec.Cmd) (io.WriteCloser, error) {
	in, err := c.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		return nil, fmt.Errorf("child said %q: %v", line, err)
	}
	return in, nil
}
