package agent

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// indicatorsState is the agent's indicators component state.
type indicatorsState struct{}

// startIndicators starts the indicators component: it does any synchronous set-up, then runs its
// long-lived goroutines in g, which must return when ctx is done.
func (a *Agent) startIndicators(ctx context.Context, g *errgroup.Group) error {
	return nil
}
