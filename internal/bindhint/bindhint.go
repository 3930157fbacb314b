// Package bindhint says why a listen failed, in the words a user acts on:
// an address another program holds, a privileged port, an address this host
// does not have. Guessing one cause for every error misled users (issue 23:
// "port 53 needs root" for a port taken by another server).
package bindhint

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Explain wraps err, the error of listening on addr ("host:port") over
// network ("tcp", "udp"), with what most likely happened. The cause stays
// reachable through errors.Is.
func Explain(network, addr string, err error) error {
	if err == nil {
		return nil
	}
	_, port, _ := net.SplitHostPort(addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w: another program already listens on %s %s (`ss -lnp 'sport = :%s'` shows which)", err, network, addr, port)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		if n, perr := strconv.Atoi(port); perr == nil && n > 0 && n < 1024 {
			return fmt.Errorf("%w: port %d is privileged: it needs root or CAP_NET_BIND_SERVICE", err, n)
		}
		return fmt.Errorf("%w: the system refused %s %s to this user", err, network, addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%w: this host has no address %s", err, addr)
	}
	return err
}
