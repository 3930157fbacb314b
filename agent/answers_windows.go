package agent

import (
	"errors"
	"net/netip"
)

// newClientLookup: Windows has no per-query attribution. With capture
// (NRPT) every query reaches the proxy from the DNS Client service, which
// asks on every application's behalf; the flow records (not implemented on
// Windows yet) would carry the application.
func newClientLookup() (clientLookup, error) {
	return nil, errors.New("per-query process attribution is not available on Windows (the DNS Client service asks for every application)")
}

// platformStub names the DNS Client service for a loopback client when NRPT
// sends the host's queries to the proxy.
func platformStub(client netip.AddrPort, captured bool) string {
	if captured && client.IsValid() && client.Addr().IsLoopback() {
		return "Dnscache"
	}
	return ""
}
