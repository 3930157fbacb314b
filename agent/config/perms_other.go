//go:build !linux && !windows

package config

import "os"

// Privileged reports whether the process runs as root.
func Privileged() bool { return os.Geteuid() == 0 }

// CheckPermissions checks nothing on this platform yet: only the Linux
// ownership and mode rules and the Windows ACL rules are implemented.
func CheckPermissions(*Config) error { return nil }
