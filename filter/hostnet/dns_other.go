//go:build !linux && !windows

package hostnet

import (
	"context"
	"errors"
)

// DNSCapture is Linux's nftables DNS redirect; on Windows the NRPT rule
// (nrpt.go) does the job.
type DNSCapture struct{}

// NewDNSCapture fails outside Linux.
func NewDNSCapture(cfg DNSCaptureConfig) (*DNSCapture, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, errors.New("dns capture: the nftables redirect needs Linux; on Windows the NRPT rule is used")
}

// Run is never reached outside Linux.
func (d *DNSCapture) Run(ctx context.Context) error { return errors.New("dns capture: not supported") }

// Install is never reached outside Linux.
func (d *DNSCapture) Install() error { return errors.New("dns capture: not supported") }

// Remove does nothing outside Linux.
func (d *DNSCapture) Remove() error { return nil }
