package agent

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// telemetryState is the agent's telemetry component state.
type telemetryState struct{}

// startTelemetry starts the telemetry component: it does any synchronous set-up, then runs its
// long-lived goroutines in g, which must return when ctx is done.
func (a *Agent) startTelemetry(ctx context.Context, g *errgroup.Group) error {
	return nil
}
