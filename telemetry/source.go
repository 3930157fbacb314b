package telemetry

import (
	"context"
	"net/netip"
)

// NameLookup maps a remote address to the name the connection was made for.
// The agent passes the DNS proxy's IP→name map (and, later, names seen by
// SNI/QUIC/HTTP inspection). It must be safe for concurrent use.
type NameLookup interface {
	Lookup(netip.Addr) (string, bool)
}

// Source produces flow records until ctx ends. Conntrack (Linux) is one;
// ETW / IP Helper (Windows, see source_windows.go) is the planned other.
type Source interface {
	Run(ctx context.Context, emit func(Record)) error
}
