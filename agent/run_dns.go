package agent

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// dnsState is the agent's dns component state.
type dnsState struct{}

// startDNS starts the dns component: it does any synchronous set-up, then runs its
// long-lived goroutines in g, which must return when ctx is done.
func (a *Agent) startDNS(ctx context.Context, g *errgroup.Group) error {
	return nil
}
