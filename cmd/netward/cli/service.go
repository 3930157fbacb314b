package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/svc"
	"github.com/netward/netward/winsvc"
)

// The service verbs (CONTRACT §3): install, uninstall, start, stop, restart.

func installCommand() *command {
	c := &command{
		name:    "install",
		usage:   "netward install (--config FILE | --demo) [--print-unit [--executable PATH]]",
		short:   "Install netward as an OS service that starts at boot (systemd, Windows SCM).",
		example: "sudo netward install --config /etc/netward/netward.json && sudo netward start\nsudo netward install --demo   # the embedded demo config, on purpose",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		cfgPath := fs.String("config", "", "config file the service runs with (default: "+config.SystemPath()+" if it exists, else the embedded default)")
		demo := fs.Bool("demo", false, "install the service on the embedded demo config (demo indicators, DNS proxy on 127.0.0.1:15353, no host interception)")
		printUnit := fs.Bool("print-unit", false, "print the systemd unit it would install and exit, changing nothing")
		exePath := fs.String("executable", "", "with --print-unit: the binary path to write into the unit (default: this binary; packagers use /usr/bin/netward)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q", fs.Arg(0))
		}
		if *demo && *cfgPath != "" {
			return usageErrorf("--config and --demo exclude each other")
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
		// The unit has PrivateTmp=yes: the service gets an empty /tmp of
		// its own, so a binary, config or state directory under /tmp (a
		// checkout there) is invisible to it.
		hidden := underPrivateTmp(append([]string{exe, sc.ConfigFile}, writable...)...)
		if *printUnit {
			unit, err := svc.SystemdUnit(svc.Unit{Executable: exe, ConfigFile: sc.ConfigFile, Writable: writable})
			if err != nil {
				return failf("%w", err)
			}
			fmt.Fprint(env.Stdout, unit)
			if len(hidden) > 0 {
				fmt.Fprintf(env.Stderr, "netward install: warning: %s\n", privateTmpProblem(hidden))
			}
			return nil
		}
		if sc.ConfigFile == "" {
			if _, err := os.Stat(config.SystemPath()); err != nil && !*demo {
				// The service would run the embedded demo config at every
				// boot: ask rather than do it silently.
				return usageErrorf("no --config and no %s: the service would run the embedded demo config (demo indicators, DNS proxy on 127.0.0.1:15353, no host interception). Give --config FILE, or --demo to install that on purpose", config.SystemPath())
			}
		}
		if runtime.GOOS == "linux" && len(hidden) > 0 {
			return failf("%s", privateTmpProblem(hidden))
		}
		m, err := svc.New(sc)
		if err != nil {
			return failf("%w", err)
		}
		if err := m.Install(); err != nil {
			return failf("%w", err)
		}
		fmt.Fprintf(env.Stdout, "Installed the netward service (%s). Start it with: netward start\n", m.Platform())
		if sc.ConfigFile == "" {
			fmt.Fprintf(env.Stdout, "It runs %s if it exists, else the embedded demo config.\n", config.SystemPath())
		}
		return nil
	}
	return c
}

// underPrivateTmp returns the paths under /tmp or /var/tmp, which a
// service with PrivateTmp=yes sees as empty directories of its own.
func underPrivateTmp(paths ...string) []string {
	var out []string
	for _, p := range paths {
		c := filepath.Clean(p)
		for _, tmp := range []string{"/tmp", "/var/tmp"} {
			if c == tmp || strings.HasPrefix(c, tmp+"/") {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func privateTmpProblem(hidden []string) string {
	return fmt.Sprintf("the service runs with PrivateTmp=yes (a private, empty /tmp) and cannot see %s; "+
		"copy them out of /tmp (e.g. sudo install -m 0755 bin/netward /usr/local/bin/, config under /etc/netward, dataDir under /var/lib) and install from there",
		strings.Join(hidden, ", "))
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
