// Package flow turns the kernel's connection tracking into telemetry
// records: one ConnectionSuccess record per finished flow with the bytes sent
// and received, plus interim records (byte deltas) for long-lived flows.
//
// Linux: conntrack over netlink (github.com/ti-mo/conntrack). Windows: see
// source_windows.go for the design (ETW + IP Helper), not implemented yet.
package flow

import (
	"net/netip"
	"time"
)

// Process is who opened a connection.
type Process struct {
	PID      int
	FileName string // executable base name
	Account  string // user name from the socket's UID
}

// ProcessLookup attributes a connection (protocol number, local and remote
// endpoints) to a process at connection start.
type ProcessLookup interface {
	Lookup(proto uint8, local, remote netip.AddrPort) (Process, bool)
}

// Stats counts what the source saw; all monotonic but Flows. `netward
// status` shows them as control.FlowStats.
type Stats struct {
	Events     uint64
	Overruns   uint64 // ENOBUFS: events lost by the kernel, healed by a dump
	Dumps      uint64
	Records    uint64
	Flows      int    // tracked now
	FlowsLimit uint64 // not tracked because the table was full
	Unnamed    uint64 // records without a RemoteUrl
	Own        uint64 // flows left out: the agent's own, or loopback
	Refused    uint64 // records the consumer refused (full queue); a dump's are reported again with the next
	Undecoded  uint64 // dump messages that did not decode (skipped)
}

// ConnNameLookup names one connection (protocol number, local and remote
// endpoints as the initiator sees them) by what inspection read from its
// first bytes: TLS SNI, the QUIC Initial's SNI, the HTTP Host, a proxy's
// CONNECT target.
type ConnNameLookup interface {
	LookupConn(proto uint8, local, remote netip.AddrPort) (string, bool)
}

const (
	defaultDumpInterval = 5 * time.Minute
	defaultMaxFlows     = 65536
)
