//go:build linux

package hostnet

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
)

// Cleanup removes every nftables table netward creates (netward_dns and
// netward_inspect, in the ip, ip6 and inet families). Missing tables are not
// an error, so it is safe to run at any time, also after a crash. A table
// still owned by a running agent cannot be removed by another process; the
// error says so.
func Cleanup() error {
	nft, err := nftables.New()
	if err != nil {
		return fmt.Errorf("open nftables netlink (run as root): %w", err)
	}
	existing, err := nft.ListTables()
	if err != nil {
		return fmt.Errorf("list nftables tables (run as root): %w", err)
	}
	var errs []error
	for _, t := range existing {
		if !isNetwardTable(t.Name) {
			continue
		}
		nft.DelTable(t)
		if err := nft.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("delete table %v %s: %w (is a netward agent still running? stop it first)", familyName(t.Family), t.Name, err))
		}
	}
	return errors.Join(errs...)
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return fmt.Sprint(uint8(f))
}
