//go:build linux

package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// DNSCapture redirects every DNS query the host sends (UDP and TCP port 53,
// IPv4 and IPv6, to any server) to the proxy.
type DNSCapture struct {
	cfg DNSCaptureConfig
	mu  sync.Mutex
	nft *nftables.Conn // the lasting socket that owns the table
}

// NewDNSCapture checks cfg; it changes nothing.
func NewDNSCapture(cfg DNSCaptureConfig) (*DNSCapture, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &DNSCapture{cfg: c}, nil
}

// Run installs the redirect, keeps it until ctx ends, then removes it.
func (d *DNSCapture) Run(ctx context.Context) error {
	if err := d.Install(); err != nil {
		return err
	}
	<-ctx.Done()
	return d.Remove()
}

// Install removes any leftover table (a previous agent's, if the kernel has
// not dropped it yet) and creates the owner table:
//
//	table ip netward_dns {            (same in ip6, to Target6)
//	  chain output { type nat hook output priority dstnat (-100);
//	    meta mark == Mark accept                 (the proxy's own upstream queries)
//	    meta l4proto udp udp dport 53 dnat to Target4
//	    meta l4proto tcp tcp dport 53 dnat to Target4
//	  }
//	}
//
// The table lives as long as the netlink socket it was created on: if the
// agent dies, the kernel deletes it and queries reach their servers again.
func (d *DNSCapture) Install() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nft != nil {
		return errors.New("dns capture: already installed")
	}
	nft, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return fmt.Errorf("dns capture: open nftables netlink (needs root or CAP_NET_ADMIN): %w", err)
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		// Each delete in its own batch: a missing table fails only that one.
		nft.DelTable(&nftables.Table{Name: DNSTableName, Family: fam})
		_ = nft.Flush()
	}
	for _, t := range []struct {
		fam    nftables.TableFamily
		proto  uint32
		target netip.AddrPort
	}{
		{nftables.TableFamilyIPv4, unix.NFPROTO_IPV4, d.cfg.Target4},
		{nftables.TableFamilyIPv6, unix.NFPROTO_IPV6, d.cfg.Target6},
	} {
		if !t.target.IsValid() {
			continue
		}
		tbl := nft.AddTable(&nftables.Table{Name: DNSTableName, Family: t.fam, Flags: nftables.TableFlagOwner})
		ch := nft.AddChain(&nftables.Chain{Name: "output", Table: tbl, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
		nft.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(d.cfg.Mark)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
		for _, l4 := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			nft.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
				&expr.Immediate{Register: 1, Data: t.target.Addr().AsSlice()},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(t.target.Port())},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: t.proto, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
			}})
		}
	}
	if err := nft.Flush(); err != nil {
		_ = nft.CloseLasting()
		return fmt.Errorf("dns capture: install nftables table %s (needs root, nf_tables and nat support, Linux ≥ 5.12 for owner tables): %w", DNSTableName, err)
	}
	d.nft = nft
	d.cfg.Log.Info("dns capture on: port 53 redirected to the proxy", "ipv4", d.cfg.Target4, "ipv6", d.cfg.Target6, "table", DNSTableName)
	return nil
}

// Remove deletes the table and closes the owning socket. Safe to call twice.
func (d *DNSCapture) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nft == nil {
		return nil
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		d.nft.DelTable(&nftables.Table{Name: DNSTableName, Family: fam})
		_ = d.nft.Flush()
	}
	// Closing the owning socket drops whatever a failed delete left.
	err := d.nft.CloseLasting()
	d.nft = nil
	d.cfg.Log.Info("dns capture off")
	if err != nil {
		return fmt.Errorf("dns capture: close nftables socket: %w", err)
	}
	return nil
}
