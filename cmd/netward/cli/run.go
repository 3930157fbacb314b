package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/netward/netward/agent"
	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/enroll"
	"github.com/netward/netward/agent/svc"
	"github.com/netward/netward/winsvc"
)

func runCommand() *command {
	c := &command{
		name:    "run",
		usage:   "netward run [--config FILE] [--log-level LEVEL] [--log-json]",
		short:   "Run the agent in the foreground (what the service runs).",
		example: "netward run --config /etc/netward/netward.json",
	}
	c.run = func(ctx context.Context, env *Env, args []string) (err error) {
		fs := newFlags(env, c)
		cfgPath := fs.String("config", "", "config file (default: "+config.SystemPath()+" if it exists, else the embedded default)")
		level := fs.String("log-level", "info", "debug, info, warn or error")
		logJSON := fs.Bool("log-json", false, "log JSON lines instead of text")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q", fs.Arg(0))
		}
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return usageErrorf("--log-level %q: want debug, info, warn or error", *level)
		}
		opts := &slog.HandlerOptions{Level: lv}
		var h slog.Handler = slog.NewTextHandler(env.Stderr, opts)
		if *logJSON {
			h = slog.NewJSONHandler(env.Stderr, opts)
		}
		log := slog.New(h)
		// Started by the Windows service control manager: there is no
		// stderr, so log to the event log (source registered by install).
		managed := !svc.Interactive()
		if managed && winsvc.IsService() {
			if el, closeLog, elErr := winsvc.EventLogger(svc.Name, lv); elErr == nil {
				log = el
				defer closeLog()
				// Errors before the agent runs (config, policy) would
				// otherwise go to a stderr nobody reads.
				defer func() {
					if err != nil {
						log.Error("netward run failed", "err", err)
					}
				}()
			} else {
				log.Error("logging to stderr", "err", elErr)
			}
		}

		cfg, err := loadRunConfig(*cfgPath)
		if err != nil {
			return failf("%w", err)
		}
		// Group Policy (HKLM\SOFTWARE\Policies\netward) overrides the file on
		// Windows; SystemPolicy is nil elsewhere.
		applied, err := config.ApplyGroupPolicy(cfg, winsvc.SystemPolicy())
		if err != nil {
			return failf("%w", err)
		}
		if len(applied) > 0 {
			log.Info("group policy overrides the config file", "keys", applied)
		}
		if err := config.ResolveIdentity(cfg); err != nil {
			return failf("%w", err)
		}
		if e, err := enroll.Apply(cfg); err != nil {
			return failf("%w", err)
		} else if e != nil {
			log.Info("enrolled with a console", "console", e.Console, "device", cfg.Device.ID, "feed", cfg.Indicators.Source)
		}
		if config.Privileged() {
			if err := config.CheckPermissions(cfg); err != nil {
				return failf("refusing to run as root: %w", err)
			}
		}
		a, err := agent.New(cfg, log)
		if err != nil {
			return failf("%w", err)
		}
		if env.Getenv("GOMEMLIMIT") == "" {
			// The soft memory limit follows the policy's size (agent/memlimit.go);
			// an operator's GOMEMLIMIT (or GOMEMLIMIT=off) wins.
			a.LimitMemory()
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		run := a.Run
		if managed {
			// Under the service manager. On Windows the SCM handler reports
			// "running" at once and stops the agent on request; systemd and
			// launchd supervise the plain process.
			run = func(ctx context.Context) error { return winsvc.Run(ctx, svc.Name, log, a.Run) }
		}
		if err := run(ctx); err != nil {
			return failf("%w", err)
		}
		return nil
	}
	return c
}

// loadRunConfig reads --config, else the system config file if it exists,
// else the embedded default.
func loadRunConfig(path string) (*config.Config, error) {
	if path != "" {
		return config.Load(path)
	}
	cfg, err := config.Load(config.SystemPath())
	if errors.Is(err, fs.ErrNotExist) {
		return config.Default()
	}
	if err != nil {
		return nil, fmt.Errorf("%w (pass --config to use another file)", err)
	}
	return cfg, nil
}
