package agent

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// inspectState is the agent's inspect component state.
type inspectState struct{}

// startInspect starts the inspect component: it does any synchronous set-up, then runs its
// long-lived goroutines in g, which must return when ctx is done.
func (a *Agent) startInspect(ctx context.Context, g *errgroup.Group) error {
	return nil
}
