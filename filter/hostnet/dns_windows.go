//go:build windows

package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// DNSCapture on Windows is the catch-all NRPT rule (nrpt.go): the DNS
// Client service sends every query to the proxy. Queries an application
// sends itself to a hard-coded server are not covered (that needs WFP).
type DNSCapture struct {
	cfg  DNSCaptureConfig
	nrpt *NRPT
}

// NewDNSCapture checks cfg; it changes nothing. NRPT rules name servers
// without a port, so the proxy must listen on port 53.
func NewDNSCapture(cfg DNSCaptureConfig) (*DNSCapture, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var servers []netip.Addr
	for _, t := range []netip.AddrPort{c.Target4, c.Target6} {
		if !t.IsValid() {
			continue
		}
		if t.Port() != 53 {
			return nil, fmt.Errorf("dns capture: %v: Windows sends NRPT queries to port 53 only; listen on port 53", t)
		}
		servers = append(servers, t.Addr())
	}
	n, err := NewNRPT(NRPTConfig{Registry: WindowsRegistry{}, Servers: servers, Refresh: RefreshNRPT})
	if err != nil {
		return nil, err
	}
	return &DNSCapture{cfg: c, nrpt: n}, nil
}

// Run installs the rule, keeps it until ctx ends, then removes it.
func (d *DNSCapture) Run(ctx context.Context) error {
	if err := d.Install(); err != nil {
		return err
	}
	<-ctx.Done()
	return d.Remove()
}

// Install removes leftovers and writes the rule.
func (d *DNSCapture) Install() error {
	if d == nil || d.nrpt == nil {
		return errors.New("dns capture: not configured")
	}
	key, err := d.nrpt.Install()
	if err != nil {
		return err
	}
	d.cfg.Log.Info("dns capture on: NRPT catch-all rule points at the proxy", "key", `HKLM\`+key)
	return nil
}

// Remove deletes the rule.
func (d *DNSCapture) Remove() error {
	if d == nil || d.nrpt == nil {
		return nil
	}
	return d.nrpt.Remove()
}
