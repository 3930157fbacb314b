package agent

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/telemetry/flow"
)

// startFlowSource starts the conntrack flow source feeding Emit. Without the
// privileges it needs (CAP_NET_ADMIN) the agent keeps running without flow
// records and says so; protection does not depend on it.
func (a *Agent) startFlowSource(ctx context.Context, g *errgroup.Group) error {
	log := a.log.With("component", "conntrack")
	cfg := flow.Config{Names: a.tel.names, Log: log, Now: a.now}
	sd, err := flow.NewSockDiag()
	if err != nil {
		log.Warn("process attribution unavailable", "err", err)
	} else {
		cfg.Procs = sd
	}
	src := flow.New(cfg)
	a.tel.flows.Store(src)
	g.Go(func() error {
		if sd != nil {
			defer sd.Close()
		}
		if err := src.Run(ctx, a.emit); err != nil {
			log.Warn("flow accounting stopped; no per-connection byte counts will be recorded", "err", err)
		}
		return nil
	})
	return nil
}
