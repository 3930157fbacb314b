//go:build !linux

package dnsproxy

import "syscall"

// Elsewhere one UDP socket serves each listen address (SO_REUSEPORT
// balances across sockets only on Linux; see reuseport_linux.go).
const reusePortBuilt = false

func defaultUDPSockets() int { return 1 }

// reusePort is never used where reusePortBuilt is false.
func reusePort(network, address string, c syscall.RawConn) error { return nil }
