// Package machine reads what a machine record (ActionType DeviceInfo,
// CONTRACT §6) reports about the host besides the agent's own state: its
// network addresses with their interfaces and hardware addresses (never
// loopback), and the users signed in. OS specifics live in the
// _linux.go/_windows.go files behind small functions; the decoding is
// pure and tested everywhere.
package machine

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/netward/netward/telemetry"
)

// Addresses lists the host's unicast addresses by interface, without
// loopback interfaces and addresses, sorted (so two reads compare equal
// when nothing changed). net.Interfaces is netlink (RTM_GETLINK/GETADDR) on
// Linux and IP Helper (GetAdaptersAddresses) on Windows.
func Addresses() ([]telemetry.IPAddress, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []telemetry.IPAddress
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		out = append(out, interfaceAddresses(ifc.Name, ifc.HardwareAddr, addrs)...)
	}
	sortAddresses(out)
	return out, nil
}

// interfaceAddresses turns one interface's addresses into records: no
// loopback, no unspecified address; link-local addresses are kept (they
// name the machine on its link) but carry no zone.
func interfaceAddresses(name string, mac net.HardwareAddr, addrs []net.Addr) []telemetry.IPAddress {
	var out []telemetry.IPAddress
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		addr = addr.Unmap().WithZone("")
		if addr.IsLoopback() || addr.IsUnspecified() || addr.IsMulticast() {
			continue
		}
		out = append(out, telemetry.IPAddress{Interface: name, Address: addr.String(), Mac: mac.String()})
	}
	return out
}

func sortAddresses(a []telemetry.IPAddress) {
	slices.SortFunc(a, func(x, y telemetry.IPAddress) int {
		if c := strings.Compare(x.Interface, y.Interface); c != 0 {
			return c
		}
		return strings.Compare(x.Address, y.Address)
	})
}

// Users lists the users signed in to the machine (each once, sorted):
// logind sessions or utmp on Linux, WTS sessions on Windows.
func Users() ([]string, error) { return users() }

// uniqueSorted drops empty and repeated names.
func uniqueSorted(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
