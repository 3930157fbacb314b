package agent

import (
	"context"
	"time"

	"github.com/netward/netward/filter"

	"golang.org/x/sync/errgroup"
)

// warnState is the agent's warn component state.
type warnState struct{}

// startWarn starts the warn component: it does any synchronous set-up, then runs its
// long-lived goroutines in g, which must return when ctx is done.
func (a *Agent) startWarn(ctx context.Context, g *errgroup.Group) error {
	return nil
}

// bypassFor reports whether a Warn match has an active bypass on this device.
// The warn component owns the bypass store; until it exists nothing is bypassed.
func (a *Agent) bypassFor(m filter.Match) (time.Time, bool) {
	return time.Time{}, false
}
