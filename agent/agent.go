// Package agent runs netward: it loads the configuration, keeps the active
// policy, and wires the indicator sync, the interceptors, the control API and
// telemetry together. New starts nothing; Run blocks until its context ends and
// cleans up everything it started.
package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/netward/netward/filter"
)

// Agent is one running netward instance.
type Agent struct {
	cfg    *Config
	log    *slog.Logger
	policy atomic.Pointer[filter.Policy]
}

// New validates cfg and returns an agent that has not started anything.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("agent: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log}
	empty, _ := filter.Compile(nil)
	a.policy.Store(empty)
	return a, nil
}

// Policy returns the active policy. It is never nil.
func (a *Agent) Policy() *filter.Policy { return a.policy.Load() }

// SetPolicy atomically replaces the active policy; the next lookup sees it.
func (a *Agent) SetPolicy(p *filter.Policy) { a.policy.Store(p) }

// Run runs the agent until ctx is cancelled. It returns nil after a clean
// shutdown.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("netward agent started", "config", configName(a.cfg), "mode", a.cfg.Mode, "dataDir", a.cfg.DataDir)
	<-ctx.Done()
	a.log.Info("netward agent stopped")
	return nil
}

func configName(c *Config) string {
	if c.Path == "" {
		return "(embedded default)"
	}
	return c.Path
}
