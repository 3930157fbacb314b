package osinfo

import (
	"os"

	"golang.org/x/sys/unix"
)

// version is PRETTY_NAME from os-release (freedesktop os-release(5): first
// /etc/os-release, then /usr/lib/os-release), else the kernel release.
func version() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := os.ReadFile(p); err == nil {
			if v := prettyName(b); v != "" {
				return v
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		return "Linux " + unix.ByteSliceToString(u.Release[:])
	}
	return ""
}
