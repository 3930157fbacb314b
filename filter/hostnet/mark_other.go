//go:build !linux

package hostnet

import "syscall"

// MarkControl is a no-op outside Linux: Windows has no socket marks, and its
// NRPT-based capture does not redirect the agent's own queries.
func MarkControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error { return nil }
}
