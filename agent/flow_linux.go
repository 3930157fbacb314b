package agent

import (
	"context"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/filter/hostnet"
	"github.com/netward/netward/telemetry/flow"
)

// startFlowSource starts the conntrack flow source feeding Emit. Without the
// privileges it needs (CAP_NET_ADMIN) the agent keeps running without flow
// records and says so; protection does not depend on it.
//
// Flows are named by what inspection read from them, else by the DNS
// answer for their address; the agent's own connections (marked sockets,
// copied into the conntrack mark by flow.OwnMarkTable, or found by process)
// and loopback-only ones are left out unless telemetry.ownTraffic is set.
func (a *Agent) startFlowSource(ctx context.Context, g *errgroup.Group) error {
	log := a.log.With("component", "conntrack")
	cfg := flow.Config{Names: a.tel.names, ConnNames: a.tel.conns, Log: log, Now: a.now}
	if pipe := a.tel.pipe.Load(); pipe != nil {
		// A dump reports up to every flow of the host's table at once:
		// paced between its datagrams like the DNS answers window, so the
		// writer takes them a portion at a time instead of refusing most.
		cfg.Pace = func() { pipe.WaitRoom(ctx.Done(), emitPortion) }
	}
	var mark *flow.OwnMarkTable
	if !a.cfg.Telemetry.OwnTraffic {
		cfg.OwnPID, cfg.SkipLoopback = os.Getpid(), true
		var err error
		if mark, err = flow.InstallOwnMark(hostnet.AgentMark); err != nil {
			log.Warn("the agent's own UDP flows may show in flow records", "err", err)
		} else {
			cfg.OwnMark = hostnet.AgentMark
		}
	}
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
		if mark != nil {
			defer mark.Close()
		}
		if err := src.Run(ctx, a.emitFlow); err != nil {
			a.tel.flows.Store(nil)
			log.Warn("flow accounting stopped; no per-connection byte counts will be recorded", "err", err)
		}
		return nil
	})
	return nil
}
