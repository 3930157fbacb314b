//go:build !linux && !windows

package agent

// CheckPermissions checks nothing on this platform yet: only the Linux
// ownership and mode rules are implemented.
func CheckPermissions(*Config) error { return nil }
