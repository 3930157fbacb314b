package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/filter"
)

// modeOverrideFile holds an admin's local mode override (`netward mode`) in
// the data directory, so it survives restarts until `netward mode --clear`.
const modeOverrideFile = "mode-override"

// startModeOverride puts a stored local override in force before the first
// indicator set is applied. An unreadable or unknown value is reported and
// left alone: the source's mode applies, as it did before the override.
func (a *Agent) startModeOverride(context.Context, *errgroup.Group) error {
	path := filepath.Join(a.cfg.DataDir, modeOverrideFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		if m, ok := filter.ParseMode(strings.TrimSpace(string(b))); ok && strings.TrimSpace(string(b)) != "" {
			a.dp.OverrideMode(m)
			a.log.Info("local mode override in force (clear it with 'netward mode --clear')", "mode", m.String(), "file", path)
			return nil
		}
		err = fmt.Errorf("%q is not one of off, audit, block", strings.TrimSpace(string(b)))
	}
	err = fmt.Errorf("mode override %s not used: %w; set it again with 'netward mode MODE' or clear it with 'netward mode --clear'", path, err)
	a.log.Warn("mode override ignored", "err", err)
	a.noteError("mode", err)
	return nil
}

// setMode sets (off, audit, block) or, for "", clears the local mode
// override. The override stays over the modes later indicator sets bring
// until it is cleared, and is kept in the data directory across restarts.
func (a *Agent) setMode(mode string) error {
	path := filepath.Join(a.cfg.DataDir, modeOverrideFile)
	if mode == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("clear the mode override: %w", err)
		}
		a.dp.ClearModeOverride()
		a.log.Info("local mode override cleared", "mode", a.dp.State().Settings.Mode.String())
		return nil
	}
	m, ok := filter.ParseMode(mode)
	if !ok {
		return fmt.Errorf("mode %q is not one of off, audit, block", mode)
	}
	if err := writeFileAtomic(path, []byte(m.String()+"\n")); err != nil {
		return fmt.Errorf("keep the mode override: %w", err)
	}
	a.dp.OverrideMode(m)
	a.log.Info("local mode override set", "mode", m.String())
	return nil
}

// writeFileAtomic replaces path with b (0600) through a rename, so a crash
// leaves the old content or the new, never a torn file.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
