package control

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// UserSocket is where an agent running without root on the embedded default
// puts its socket when the system runtime directory is not writable, and
// where the CLI looks for it: $XDG_RUNTIME_DIR/netward/netward.sock, or,
// without a per-user runtime directory (su, ssh without a session,
// containers), /tmp/netward-UID/netward.sock — a directory of the user's
// own, as tmux keeps, whose owner and mode both sides check (UserDirOK)
// because anyone may create names in /tmp. "" on Windows, where pipes need
// no directory.
func UserSocket(getenv func(string) string) string {
	if runtime.GOOS == "windows" || getenv == nil {
		return ""
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "netward", "netward.sock")
	}
	// Fixed /tmp, not $TMPDIR: the agent and the CLI may run with
	// different environments and must agree on the path.
	return filepath.Join("/tmp", fmt.Sprintf("netward-%d", os.Getuid()), "netward.sock")
}
