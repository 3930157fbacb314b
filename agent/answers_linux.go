package agent

import (
	"net/netip"

	"github.com/netward/netward/telemetry/flow"
)

// newClientLookup opens sock_diag to find a DNS client's socket.
func newClientLookup() (clientLookup, error) { return flow.NewSockDiag() }

// platformStub: on Linux the socket lookup tells a stub resolver by its
// process (stubResolvers); nothing to add when it found none.
func platformStub(netip.AddrPort, bool) string { return "" }
