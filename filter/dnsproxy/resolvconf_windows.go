//go:build windows

package dnsproxy

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/windows"
)

// osResolvers are the DNS servers of the adapters that are up (Windows has
// no resolv.conf; path is ignored). The deprecated site-local defaults
// fec0:0:0:ffff::1..3 that Windows lists on adapters without IPv6 DNS are
// skipped.
func osResolvers(path string) ([]string, error) {
	size := uint32(15 << 10)
	var buf []byte
	for range 3 {
		buf = make([]byte, size)
		err := windows.GetAdaptersAddresses(windows.AF_UNSPEC, windows.GAA_FLAG_SKIP_ANYCAST|windows.GAA_FLAG_SKIP_MULTICAST,
			0, (*windows.IpAdapterAddresses)(unsafe.Pointer(&buf[0])), &size)
		if err == nil {
			break
		}
		if err != windows.ERROR_BUFFER_OVERFLOW {
			return nil, fmt.Errorf("read the adapters' DNS servers: %w (set dns.upstreams)", err)
		}
	}
	var out []string
	for a := (*windows.IpAdapterAddresses)(unsafe.Pointer(&buf[0])); a != nil; a = a.Next {
		if a.OperStatus != windows.IfOperStatusUp {
			continue
		}
		for d := a.FirstDnsServerAddress; d != nil; d = d.Next {
			ip, ok := netip.AddrFromSlice(d.Address.IP())
			if !ok || isSiteLocalDefault(ip.Unmap()) {
				continue
			}
			out = append(out, netip.AddrPortFrom(ip.Unmap(), 53).String())
		}
	}
	return out, nil
}
