package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestChildCmdChild is the child of TestChildCmd: it prints its parameter.
func TestChildCmdChild(t *testing.T) {
	if !IsChild(t) {
		t.Skip("child process of TestChildCmd")
	}
	fmt.Println("CHILD", os.Getenv("E2E_TEST_PARAM"))
}

// A child runs only its own test, with its parameter, and the parent's
// process is not one.
func TestChildCmd(t *testing.T) {
	if IsChild(t) {
		t.Fatal("the parent test thinks it is a child")
	}
	out, err := ChildCmd("TestChildCmdChild", "E2E_TEST_PARAM=42").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CHILD 42") || strings.Contains(string(out), "TestChildCmd ") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	done := make(chan struct{})
	go func() { c.Add(time.Second); close(done) }()
	<-done
	c.Add(time.Minute)
	if got := c.Now(); !got.Equal(t0.Add(time.Minute + time.Second)) {
		t.Errorf("Now() = %v, want %v", got, t0.Add(time.Minute+time.Second))
	}
}
