//go:build !windows

package svc

// postInstall has nothing to add off Windows: the systemd unit carries the
// restart policy and hardening itself, and systemd creates the state
// directory with mode 0700.
func postInstall(string, []string) error { return nil }
