//go:build !linux

package agent

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// startFlowSource: flow accounting is implemented on Linux (conntrack) only;
// the Windows design is in telemetry/source_windows.go.
func (a *Agent) startFlowSource(ctx context.Context, g *errgroup.Group) error { return nil }
