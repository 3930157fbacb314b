//go:build !linux && !windows

package hostnet

// Cleanup removes what netward changed in the OS. Outside Linux there are no
// firewall tables and no NRPT.
func Cleanup() error { return nil }
