package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/svc"
	"github.com/netward/netward/winsvc"
)

// The service verbs (CONTRACT §3): install, uninstall, start, stop, restart.

func installCommand() *command {
	c := &command{
		name:    "install",
		usage:   "netward install [--config FILE] [--print-unit [--executable PATH]]",
		short:   "Install netward as an OS service that starts at boot (systemd, Windows SCM).",
		example: "sudo netward install --config /etc/netward/netward.json && sudo netward start",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		cfgPath := fs.String("config", "", "config file the service runs with (default: "+config.SystemPath()+" if it exists, else the embedded default)")
		printUnit := fs.Bool("print-unit", false, "print the systemd unit it would install and exit, changing nothing")
		exePath := fs.String("executable", "", "with --print-unit: the binary path to write into the unit (default: this binary; packagers use /usr/bin/netward)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q", fs.Arg(0))
		}
		sc := installConfig()
		if *cfgPath != "" {
			abs, err := filepath.Abs(*cfgPath)
			if err != nil {
				return failf("--config %s: %w", *cfgPath, err)
			}
			// Refuse now what the service would refuse at every start.
			cfg, err := config.Load(abs)
			if err != nil {
				return failf("%w", err)
			}
			if config.Privileged() {
				if err := config.CheckPermissions(cfg); err != nil {
					return failf("%w", err)
				}
			}
			sc.ConfigFile, sc.Agent = abs, cfg
		}
		if *exePath != "" && !*printUnit {
			return usageErrorf("--executable only goes with --print-unit; install uses the binary it runs as")
		}
		if *printUnit {
			exe := *exePath
			if exe == "" {
				var err error
				if exe, err = os.Executable(); err == nil {
					exe, err = filepath.EvalSymlinks(exe)
				}
				if err != nil {
					return failf("find the netward binary: %w", err)
				}
			}
			var writable []string
			if sc.Agent != nil {
				writable = svc.Writable(sc.Agent)
			}
			unit, err := svc.SystemdUnit(svc.Unit{Executable: exe, ConfigFile: sc.ConfigFile, Writable: writable})
			if err != nil {
				return failf("%w", err)
			}
			fmt.Fprint(env.Stdout, unit)
			return nil
		}
		m, err := svc.New(sc)
		if err != nil {
			return failf("%w", err)
		}
		if err := m.Install(); err != nil {
			return failf("%w", err)
		}
		fmt.Fprintf(env.Stdout, "Installed the netward service (%s). Start it with: netward start\n", m.Platform())
		return nil
	}
	return c
}

func uninstallCommand() *command {
	return controlCommand("uninstall", "Stop netward and remove the OS service; its rules are removed when it stops.",
		"sudo netward uninstall", "Uninstalled the netward service.",
		func(m *svc.Manager) error {
			// Stopping first runs ExecStopPost (netward cleanup) on systemd; a
			// service that is not running is no reason to keep it installed.
			_ = m.Stop()
			return m.Uninstall()
		})
}

func startCommand() *command {
	return controlCommand("start", "Start the installed netward service.", "sudo netward start", "Started the netward service.",
		(*svc.Manager).Start)
}

func stopCommand() *command {
	return controlCommand("stop", "Stop the netward service (its rules are removed on stop).", "sudo netward stop", "Stopped the netward service.",
		(*svc.Manager).Stop)
}

// installConfig is the service configuration install starts from: the
// Windows lock-down (recovery actions, DACLs on the data directories) is
// wired here and nowhere else, and a test pins it.
func installConfig() svc.Config { return svc.Config{PostInstall: winsvc.PostInstall} }

func restartCommand() *command {
	return controlCommand("restart", "Restart the netward service.", "sudo netward restart", "Restarted the netward service.",
		(*svc.Manager).Restart)
}

func controlCommand(name, short, example, done string, action func(*svc.Manager) error) *command {
	c := &command{name: name, usage: "netward " + name, short: short, example: example}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q", fs.Arg(0))
		}
		m, err := svc.New(svc.Config{})
		if err != nil {
			return failf("%w", err)
		}
		if err := action(m); err != nil {
			return failf("%w", err)
		}
		fmt.Fprintln(env.Stdout, done)
		return nil
	}
	return c
}
