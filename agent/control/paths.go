package control

import (
	"path/filepath"
	"runtime"
)

// UserSocket is where an agent running without root on the embedded default
// puts its socket when the system runtime directory is not writable:
// $XDG_RUNTIME_DIR/netward/netward.sock. "" when there is no such directory
// (and on Windows, where pipes need no directory).
func UserSocket(getenv func(string) string) string {
	if runtime.GOOS == "windows" || getenv == nil {
		return ""
	}
	d := getenv("XDG_RUNTIME_DIR")
	if d == "" || !filepath.IsAbs(d) {
		return ""
	}
	return filepath.Join(d, "netward", "netward.sock")
}
