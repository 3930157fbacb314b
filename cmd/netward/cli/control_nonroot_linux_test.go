package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netward/netward/internal/e2e"
)

// TestControlGoldenNonRoot runs the real CLI (this test binary in CLI mode)
// as uid 65534 against the control socket: reads and a bypass work, admin
// calls are refused by the agent (HTTP 403) and the CLI exits 1 saying root
// is needed.
func TestControlGoldenNonRoot(t *testing.T) {
	e2e.Require(t)
	sock := startGoldenAgent(t)
	// The other uid must reach the socket (in the runtime directory it is
	// 0666 in a 0755 directory) and execute the binary.
	bin := binaryForOtherUser(t, filepath.Dir(sock))
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"nonroot-check", []string{"check", "warned.test"}, ExitOK},
		{"nonroot-bypass", []string{"bypass", "warned.test"}, ExitOK},
		{"nonroot-revoke", []string{"bypass", "--revoke", "warned.test"}, ExitFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := cliChild(bin, append([]string{tt.args[0], "--socket", sock}, tt.args[1:]...)...)
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			_ = cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if code != tt.code {
				t.Errorf("as uid 65534, netward %q exit = %d, want %d\n%s%s", tt.args, code, tt.code, stdout.String(), stderr.String())
			}
			got := fmt.Sprintf("# (uid 65534) netward %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s", strings.Join(tt.args, " "), code, stdout.String(), stderr.String())
			checkGolden(t, filepath.Join("testdata", "golden", tt.name+".golden"), strings.ReplaceAll(got, sock, "$SOCKET"))
		})
	}
}

// binaryForOtherUser copies this test binary into dir (a t.TempDir()) and
// opens dir and its parent to other users, so a child run under another
// uid can execute it; it returns the copy's path.
func binaryForOtherUser(t *testing.T, dir string) string {
	t.Helper()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "netward")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
