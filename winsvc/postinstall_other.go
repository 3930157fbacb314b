//go:build !windows

package winsvc

// PostInstall has nothing to add off Windows: the systemd unit carries the
// restart policy and hardening itself, and systemd creates the state
// directory with mode 0700.
func PostInstall(string, []string) error { return nil }
