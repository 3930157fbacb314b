package agent

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// startFlowSource starts the conntrack flow source.
func (a *Agent) startFlowSource(ctx context.Context, g *errgroup.Group) error { return nil }
