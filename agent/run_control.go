package agent

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// controlState is the agent's control component state.
type controlState struct{}

// startControl starts the control component: it does any synchronous set-up, then runs its
// long-lived goroutines in g, which must return when ctx is done.
func (a *Agent) startControl(ctx context.Context, g *errgroup.Group) error {
	return nil
}
