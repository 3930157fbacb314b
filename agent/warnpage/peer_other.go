//go:build !linux

package warnpage

import "net/netip"

// LocalPeerUser cannot tell the local user on this platform; bypasses from
// the page are device-wide.
func LocalPeerUser(client, server netip.AddrPort) string { return "" }
