// Package agent runs netward from a loaded configuration (agent/config): it
// wires the indicator sync, the decision point every interceptor asks
// (filter.DecisionPoint), the interceptors, the pages, the control API and
// telemetry together, one run_*.go file per component. New starts nothing;
// Run blocks until its context ends and cleans up everything it started.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

// Agent is one running netward instance.
type Agent struct {
	cfg   *config.Config
	log   *slog.Logger
	now   func() time.Time
	sinks []recordSink
	// packed are the sinks that take records packed (see packedSink).
	packed []packedSink
	// dp is the decision in force (policy, settings, bypasses) that every
	// interceptor and the control API ask, and that publishes its changes.
	dp *filter.DecisionPoint
	// panics counts panics recovered per request by every component (DNS,
	// inspector, control API, pages), exported as a metric.
	panics *guard.Panics

	// Per-component state, each owned by its run_*.go file.
	ind  indicatorsState
	dns  dnsState
	ctl  controlState
	warn warnState
	tel  telemetryState
	insp inspectState
	ans  answersState
	mach machineState
	mem  memState
}

// New validates cfg and returns an agent that has not started anything.
// A device identity left "auto" is resolved by Run (config.ResolveIdentity).
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("agent: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, now: time.Now, panics: guard.New(log)}
	mode, _ := filter.ParseMode(cfg.Mode)
	a.dp = filter.NewDecisionPoint(filter.Settings{Mode: mode}, func() time.Time { return a.now() })
	a.initDNS()          // the IP→name map exists before telemetry starts
	a.initAnswers()      // the DNS answer queue exists before DNS starts
	a.initControlSinks() // the events ring and metrics see every record, from the first
	return a, nil
}

// Run runs the agent until ctx is cancelled. Components start in dependency
// order: the last good indicator set is enforced before anything touches the
// network. Run returns nil after a clean shutdown; if a component fails, the
// others are stopped and the error is returned.
func (a *Agent) Run(ctx context.Context) error {
	// The data directory first: created 0700 and verified on the opened
	// directory before any store in it is read.
	if err := config.SecureDataDir(a.cfg.DataDir); err != nil {
		return err
	}
	// `netward run` resolves the identity before New; a caller that did
	// not gets the same resolution here, before any record is stamped.
	if err := config.ResolveIdentity(a.cfg); err != nil {
		return err
	}
	a.log.Info("netward agent starting", "config", configName(a.cfg), "mode", a.cfg.Mode, "dataDir", a.cfg.DataDir)
	for _, w := range config.TransportWarnings(a.cfg) {
		a.log.Warn(w)
	}
	g, gctx := errgroup.WithContext(ctx)
	starts := []struct {
		name  string
		start func(context.Context, *errgroup.Group) error
	}{
		{"mode override", a.startModeOverride},
		{"indicators", a.startIndicators},
		{"telemetry", a.startTelemetry},
		{"warn pages", a.startWarn},
		{"dns", a.startDNS},
		{"inspection", a.startInspect},
		{"control", a.startControl},
	}
	var startErr error
	for _, s := range starts {
		if err := s.start(gctx, g); err != nil {
			startErr = fmt.Errorf("start %s: %w", s.name, err)
			break
		}
	}
	if startErr == nil {
		a.log.Info("netward agent running")
		<-gctx.Done()
	}
	// Either ctx ended, a component failed, or a start failed: wait for every
	// goroutine the components started; each cleans up on gctx.Done.
	if startErr != nil {
		g.Go(func() error { return startErr })
	}
	err := g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		a.log.Info("netward agent stopped")
		return nil
	}
	if err == nil {
		err = errors.New("agent stopped unexpectedly")
	}
	a.log.Error("netward agent failed", "err", err)
	return err
}

func configName(c *config.Config) string {
	if c.Path == "" {
		return "(embedded default)"
	}
	return c.Path
}
