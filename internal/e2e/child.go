package e2e

import (
	"os"
	"os/exec"
)

// A child is the test binary run again as a second process that does one
// thing — serve as a real site in another namespace, hold a socket as
// another user, be killed in the middle of a write — and nothing else. The
// child is a test function that returns (skips) unless IsChild says this
// process is its child:
//
//	func TestFooChild(t *testing.T) {
//		if !e2e.IsChild(t) {
//			t.Skip("child process of TestFoo")
//		}
//		... // parameters come in the environment
//	}
//
// and the parent starts it with ChildCmd(t, "TestFooChild", "NAME=value").

// childEnv names the test a child process runs.
const childEnv = "NETWARD_TEST_CHILD"

// ChildArgs are the program and arguments that run the test binary as the
// child running test, to be wrapped (ip netns exec, setpriv) or run as is
// (ChildCmd).
func ChildArgs(test string) (string, []string) {
	return os.Args[0], []string{"-test.run=^" + test + "$", "-test.count=1"}
}

// ChildEnv is the environment of the child running test: this process's,
// the child marker and env ("NAME=value").
func ChildEnv(test string, env ...string) []string {
	return append(append(os.Environ(), childEnv+"="+test), env...)
}

// ChildCmd returns a command running the test binary as the child running
// test, with env added to the environment.
func ChildCmd(test string, env ...string) *exec.Cmd {
	bin, args := ChildArgs(test)
	cmd := exec.Command(bin, args...)
	cmd.Env = ChildEnv(test, env...)
	return cmd
}

// ChildCmd is ChildCmd run inside the namespace.
func (n *Netns) ChildCmd(test string, env ...string) *exec.Cmd {
	bin, args := ChildArgs(test)
	cmd := n.Cmd(bin, args...)
	cmd.Env = ChildEnv(test, env...)
	return cmd
}

// IsChild reports whether this process was started by ChildCmd to run the
// calling test t.
func IsChild(t interface{ Name() string }) bool { return os.Getenv(childEnv) == t.Name() }
