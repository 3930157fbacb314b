//go:build !linux

package hostnet

import (
	"context"
	"errors"

	"github.com/netward/netward/filter"
)

// Inspector is the inline TLS/QUIC/HTTP inspector; only Linux has one.
type Inspector struct{}

// NewInspector fails outside Linux.
func NewInspector(cfg InspectorConfig) (*Inspector, error) {
	return nil, errors.New("inspect: inline inspection needs Linux netfilter; set sni.enabled to false on this platform")
}

// Run is never reached outside Linux.
func (i *Inspector) Run(ctx context.Context) error { return errors.New("inspect: not supported") }

// Ready is never closed outside Linux.
func (i *Inspector) Ready() <-chan struct{} { return nil }

// Stats returns the counters (none).
func (i *Inspector) Stats() InspectorStats { return InspectorStats{} }

// SetIP does nothing outside Linux.
func (i *Inspector) SetIP(v filter.IPVerdicts) {}
