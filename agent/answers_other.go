//go:build !linux && !windows

package agent

import (
	"errors"
	"net/netip"
)

func newClientLookup() (clientLookup, error) {
	return nil, errors.New("per-query process attribution is available on Linux only")
}

func platformStub(netip.AddrPort, bool) string { return "" }
