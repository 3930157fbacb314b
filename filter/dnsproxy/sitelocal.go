package dnsproxy

import "net/netip"

var siteLocalDefault = netip.MustParsePrefix("fec0:0:0:ffff::/125")

// isSiteLocalDefault reports Windows's placeholder IPv6 DNS servers
// fec0:0:0:ffff::1, ::2 and ::3 (deprecated site-local, RFC 3879).
func isSiteLocalDefault(a netip.Addr) bool { return siteLocalDefault.Contains(a) }
