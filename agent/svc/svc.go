// Package svc installs and controls netward as an OS service (systemd,
// Windows service control manager, launchd) through
// github.com/kardianos/service. The systemd unit is netward's own (unit.go),
// handed to the library as a custom script; Windows-specific configuration
// (recovery actions, DACL) is applied after install by Config.PostInstall
// (winsvc.PostInstall, which the CLI passes).
package svc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kardianos/service"

	"github.com/netward/netward/agent/config"
)

// Name is the service name on every platform (systemd unit netward.service,
// Windows service "netward").
const Name = "netward"

// Config is what `netward install` needs to know.
type Config struct {
	// Executable is the netward binary the service runs; "" means this one.
	Executable string
	// ConfigFile is the config the service runs with; "" means the system
	// default lookup of `netward run`. Must be absolute.
	ConfigFile string
	// Agent is ConfigFile parsed (nil for the default); its dataDir and control
	// socket decide which extra paths the unit must make writable.
	Agent *config.Config
	// PostInstall configures what the service library cannot, right after
	// Install: the service named name and the directories dirs that install
	// locks down (winsvc.PostInstall: recovery actions and DACLs on Windows,
	// nothing elsewhere). Required by Install: a service installed without
	// it on Windows would run with the data directory open to users.
	PostInstall func(name string, dirs []string) error
}

// Manager installs and controls the service.
type Manager struct {
	cfg  Config
	s    service.Service
	unit string // rendered systemd unit (Linux only)
}

// noop satisfies service.Interface for control-only use: `netward run` runs
// the agent itself (see winsvc.Run on Windows).
type noop struct{}

func (noop) Start(service.Service) error { return nil }
func (noop) Stop(service.Service) error  { return nil }

// New prepares a Manager; it changes nothing on the system.
func New(cfg Config) (*Manager, error) {
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the netward binary: %w", err)
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return nil, fmt.Errorf("find the netward binary: %w", err)
		}
		cfg.Executable = exe
	}
	if cfg.ConfigFile != "" && !filepath.IsAbs(cfg.ConfigFile) {
		return nil, fmt.Errorf("config file %q is not absolute; the service does not run in this directory", cfg.ConfigFile)
	}
	args := []string{"run"}
	if cfg.ConfigFile != "" {
		args = append(args, "--config", cfg.ConfigFile)
	}
	m := &Manager{cfg: cfg}
	sc := &service.Config{
		Name:        Name,
		DisplayName: "netward",
		Description: "netward endpoint network protection: blocks and warns on network indicators.",
		Executable:  cfg.Executable,
		Arguments:   args,
		Option:      service.KeyValue{},
	}
	switch runtime.GOOS {
	case "linux":
		unit, err := SystemdUnit(Unit{Executable: cfg.Executable, ConfigFile: cfg.ConfigFile, Writable: Writable(cfg.Agent)})
		if err != nil {
			return nil, err
		}
		// kardianos renders SystemdScript as a template; ours is literal text.
		if strings.Contains(unit, "{{") {
			return nil, fmt.Errorf("path contains \"{{\", which the service library would read as a template; rename it")
		}
		m.unit = unit
		sc.Option["SystemdScript"] = unit
	case "windows":
		sc.Option["StartType"] = "automatic"
		// winsvc.Configure replaces this single action with the full
		// 1 s / 5 s / 30 s sequence right after install.
		sc.Option["OnFailure"] = "restart"
		sc.Option["OnFailureDelayDuration"] = "1s"
	case "darwin":
		sc.Option["KeepAlive"] = true
		sc.Option["RunAtLoad"] = true
	}
	s, err := service.New(noop{}, sc)
	if err != nil {
		if errors.Is(err, service.ErrNoServiceSystemDetected) {
			return nil, fmt.Errorf("no supported service manager found (systemd on Linux, the service control manager on Windows, launchd on macOS); run `netward run` under your own supervisor instead")
		}
		return nil, fmt.Errorf("service: %w", err)
	}
	// kardianos falls back to SysV, upstart, OpenRC... on Linux; netward's
	// restart policy, hardening and ExecStopPost cleanup exist only in its
	// systemd unit, so it installs nowhere else.
	if runtime.GOOS == "linux" && s.Platform() != "linux-systemd" {
		return nil, fmt.Errorf("this system does not run systemd (found %s); netward installs only as a systemd service on Linux: run `netward run` under your init system and `netward cleanup` after it stops", s.Platform())
	}
	m.s = s
	return m, nil
}

// Writable lists the directories outside /var/lib/netward and /run/netward
// that cfg makes the agent write to.
func Writable(cfg *config.Config) []string {
	if cfg == nil {
		return nil
	}
	var out []string
	add := func(dir, under string) {
		if dir == "" || !filepath.IsAbs(dir) {
			return
		}
		dir = filepath.Clean(dir)
		if dir == under || strings.HasPrefix(dir, under+"/") {
			return
		}
		out = append(out, dir)
	}
	add(cfg.DataDir, "/var/lib/netward")
	if cfg.Control.Socket != "" {
		add(filepath.Dir(cfg.Control.Socket), "/run/netward")
	}
	return out
}

// Platform names the service manager in use ("linux-systemd", "windows-service", ...).
func (m *Manager) Platform() string { return m.s.Platform() }

// Unit returns the systemd unit Install writes ("" off Linux).
func (m *Manager) Unit() string { return m.unit }

// Install registers the service to start at boot; it does not start it.
func (m *Manager) Install() error {
	if m.cfg.PostInstall == nil {
		// Refused before anything changes: the lock-down is not optional.
		return errors.New("service install: no post-install step (svc.Config.PostInstall) was given; this is a bug in the caller, which must pass winsvc.PostInstall")
	}
	if err := m.s.Install(); err != nil {
		return explain("install", err)
	}
	if err := m.cfg.PostInstall(Name, m.dirs()); err != nil {
		return fmt.Errorf("service installed, but configuring it failed: %w; run `netward uninstall` and try again", err)
	}
	return nil
}

// dirs are the directories install locks down on Windows (winsvc.SecureDir):
// netward's own %ProgramData%\netward, and the data directory when it is
// inside it or does not exist yet (then netward creates it). A directory the
// admin already had elsewhere (a config file's folder, an existing dataDir) is
// never changed: the start-up permission check reports it instead.
func (m *Manager) dirs() []string {
	own := filepath.Dir(config.SystemPath())
	dirs := []string{own}
	if m.cfg.Agent != nil && m.cfg.Agent.DataDir != "" {
		d := filepath.Clean(m.cfg.Agent.DataDir)
		_, err := os.Stat(d)
		if rel, rerr := filepath.Rel(own, d); (rerr == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))) || errors.Is(err, os.ErrNotExist) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// Uninstall removes the service (stop it first).
func (m *Manager) Uninstall() error { return explain("uninstall", m.s.Uninstall()) }

// Start starts the installed service.
func (m *Manager) Start() error { return explain("start", m.s.Start()) }

// Stop stops the service; on systemd its ExecStopPost runs `netward cleanup`.
func (m *Manager) Stop() error { return explain("stop", m.s.Stop()) }

// Restart stops and starts the service.
func (m *Manager) Restart() error { return explain("restart", m.s.Restart()) }

// Interactive reports whether the process runs from a terminal rather than
// under the service manager.
func Interactive() bool { return service.Interactive() }

// explain turns the library's errors into messages that say what to do.
func explain(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case errors.Is(err, service.ErrNotInstalled) || strings.Contains(msg, "does not exist") || strings.Contains(msg, "not-found") || strings.Contains(msg, "not loaded"):
		return fmt.Errorf("%s: the netward service is not installed; run `netward install` first: %w", op, err)
	case strings.Contains(msg, "already exists"):
		return fmt.Errorf("%s: the netward service is already installed; run `netward uninstall` first to reinstall: %w", op, err)
	case errors.Is(err, os.ErrPermission) || strings.Contains(msg, "ccess is denied") || strings.Contains(msg, "ermission denied") || strings.Contains(msg, "Interactive authentication required"):
		return fmt.Errorf("%s: %w; run it as root (sudo) or from an Administrator prompt", op, err)
	}
	if runtime.GOOS == "linux" {
		return fmt.Errorf("%s: %w; see `systemctl status netward` and `journalctl -u netward`", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
