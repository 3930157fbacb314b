//go:build !windows

package svc

// postInstall has nothing to add off Windows: the systemd unit carries the
// restart policy and hardening itself.
func postInstall(string) error { return nil }
