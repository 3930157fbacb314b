// Package agent runs netward: it loads the configuration, keeps the active
// policy, and wires the indicator sync, the interceptors, the control API and
// telemetry together. New starts nothing; Run blocks until its context ends and
// cleans up everything it started.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/guard"
)

// Agent is one running netward instance.
type Agent struct {
	cfg    *Config
	log    *slog.Logger
	now    func() time.Time
	policy atomic.Pointer[filter.Policy]
	sinks  []RecordSink
	// settings are the feed settings in force (mode, convertWarnToBlock, ...).
	settings atomic.Pointer[FeedSettings]
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
}

// FeedSettings are the console's device settings (CONTRACT §5) merged with
// the local config.
type FeedSettings struct {
	Mode                filter.Mode
	ConvertWarnToBlock  bool
	WarnRedirectURL     string
	BlockRedirectURL    string
	BypassDurationHours float64
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
	a := &Agent{cfg: cfg, log: log, now: time.Now, panics: guard.New(log)}
	empty, err := filter.Compile(nil)
	if err != nil {
		return nil, err
	}
	a.policy.Store(empty)
	mode, _ := filter.ParseMode(cfg.Mode)
	a.settings.Store(&FeedSettings{Mode: mode})
	a.insp.changed = make(chan struct{}, 1)
	a.initDNS()          // the IP→name map exists before telemetry starts
	a.initControlSinks() // the events ring and metrics see every record, from the first
	return a, nil
}

// Policy returns the active policy. It is never nil.
func (a *Agent) Policy() *filter.Policy { return a.policy.Load() }

// SetPolicy atomically replaces the active policy; the next lookup sees it.
// It counts a policy swap for `netward status` and the metrics.
func (a *Agent) SetPolicy(p *filter.Policy) {
	a.policy.Store(p)
	a.ctl.swaps.Add(1)
	a.ipChanged()
}

// Settings returns the feed settings in force. Never nil.
func (a *Agent) Settings() *FeedSettings { return a.settings.Load() }

// Run runs the agent until ctx is cancelled. Components start in dependency
// order: the last good indicator set is enforced before anything touches the
// network. Run returns nil after a clean shutdown; if a component fails, the
// others are stopped and the error is returned.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("netward agent starting", "config", configName(a.cfg), "mode", a.cfg.Mode, "dataDir", a.cfg.DataDir)
	g, gctx := errgroup.WithContext(ctx)
	starts := []struct {
		name  string
		start func(context.Context, *errgroup.Group) error
	}{
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

func configName(c *Config) string {
	if c.Path == "" {
		return "(embedded default)"
	}
	return c.Path
}
