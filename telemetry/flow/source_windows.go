package flow

// Windows design (compile-checked, not implemented):
//
// Windows has no conntrack. The equivalent records come from two sources:
//
//  1. ETW, provider Microsoft-Windows-Kernel-Network
//     ({7DD42A49-5329-4832-8DFD-43D979153A88}): TcpIp/Connect, TcpIp/Disconnect,
//     TcpIp/Send, TcpIp/Recv (and UdpIp/Send, UdpIp/Recv) events carry the
//     4-tuple, the byte count of each send/receive and the PID. A real-time
//     session aggregates sends/receives per tuple and emits a record at
//     Disconnect and every DumpInterval for long-lived flows — the same
//     contract as the conntrack source. Lost events (EVENT_TRACE_LOGFILE
//     EventsLost) are counted like ENOBUFS and healed by a snapshot (2).
//  2. IP Helper: GetExtendedTcpTable/GetExtendedUdpTable with
//     TCP_TABLE_OWNER_PID_ALL give tuple → PID for attribution at connection
//     start and a periodic snapshot; GetPerTcpConnectionEStats
//     (TcpConnectionEstatsData) gives per-connection byte counters when ETW is
//     unavailable. The account name comes from the process token
//     (OpenProcessToken + GetTokenInformation(TokenUser) + LookupAccountSid).
//
// The types below are the seams those implementations plug into.

import (
	"context"
	"net/netip"
	"time"
)

// ETWConnEvent is one decoded Kernel-Network event.
type ETWConnEvent struct {
	Kind          ETWKind
	PID           int
	Proto         uint8
	Local, Remote netip.AddrPort
	Bytes         uint64
	Time          time.Time
}

// ETWKind is the event's opcode class.
type ETWKind uint8

const (
	ETWConnect ETWKind = iota + 1
	ETWDisconnect
	ETWSend
	ETWRecv
)

// ETWSession delivers Kernel-Network events until ctx ends; Lost reports
// how many events the session dropped so far.
type ETWSession interface {
	Events(ctx context.Context) (<-chan ETWConnEvent, error)
	Lost() uint64
}

// ConnTable is an IP Helper snapshot of live connections with owner PIDs.
type ConnTable interface {
	Snapshot() ([]ConnEntry, error)
}

// ConnEntry is one row of GetExtendedTcpTable / GetExtendedUdpTable.
type ConnEntry struct {
	Proto         uint8
	Local, Remote netip.AddrPort
	PID           int
	// BytesOut/BytesIn come from GetPerTcpConnectionEStats when enabled.
	BytesOut, BytesIn uint64
}
