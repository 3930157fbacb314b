package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Privileged reports whether the process runs as root: the case
// CheckPermissions guards.
func Privileged() bool { return os.Geteuid() == 0 }

// CheckPermissions refuses to run as root with a config file or data
// directory that someone other than root could change: whoever can write the
// config decides what netward blocks (or turns it off), and whoever can write
// the data directory can plant indicator sets, bypasses and the warn-page CA
// key. The check covers the file or directory and every directory above it,
// because a writable parent lets its owner replace the file. Call it only when
// running as root (the service); a user running `netward run` for themselves
// owns their files.
func CheckPermissions(cfg *Config) error {
	return permChecker{trusted: 0}.check(cfg)
}

// permChecker trusts uid 0 and, in tests, the test's own uid.
type permChecker struct{ trusted uint32 }

func (p permChecker) check(cfg *Config) error {
	var errs []error
	if cfg.Path != "" && cfg.Path != "(embedded default)" {
		if err := p.checkTree(cfg.Path, "config file"); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.DataDir != "" {
		// The data directory may not exist yet (the agent creates it): check
		// the nearest existing ancestor instead.
		if err := p.checkTree(nearestExisting(cfg.DataDir), "data directory"); err != nil {
			errs = append(errs, err)
		}
	}
	// A file:// indicator source decides what is blocked (and its settings
	// the mode): the same rule as the config file. It may not exist yet
	// (status then says so): its nearest existing directory is checked.
	if path, ok := FileSourcePath(cfg.Indicators.Source); ok {
		if err := p.checkTree(nearestExisting(path), "indicator file"); err != nil {
			errs = append(errs, err)
		}
	}
	// The token file is the device's credential: nobody else may change it,
	// and nobody else may read it.
	if tf := cfg.Indicators.TokenFile; tf != "" {
		if err := p.checkTree(nearestExisting(tf), "token file"); err != nil {
			errs = append(errs, err)
		} else if err := p.checkSecret(tf); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkSecret refuses a credential file that others (or a group other than
// root's) can read. A missing file is not an error here: the agent reports
// an unreadable token when it uses it.
func (p permChecker) checkSecret(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token file %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	perm := fi.Mode().Perm()
	if perm&0o004 != 0 || (perm&0o040 != 0 && st.Gid != 0 && st.Gid != p.trusted) {
		return fmt.Errorf("token file %s is readable by other users (mode %04o): it is the device's credential for the console; fix with: chmod 600 %s", path, perm, path)
	}
	return nil
}

// checkTree checks path and each of its parent directories.
func (p permChecker) checkTree(path, what string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	// The named file itself may be a symlink (e.g. managed by configuration
	// management): check its target, then the directories above both.
	target, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	seen := map[string]bool{}
	for _, start := range []string{abs, target} {
		for p2 := start; ; p2 = filepath.Dir(p2) {
			if !seen[p2] {
				seen[p2] = true
				if err := p.checkOne(p2, what, path); err != nil {
					return err
				}
			}
			if filepath.Dir(p2) == p2 {
				break
			}
		}
	}
	return nil
}

func (p permChecker) checkOne(path, what, named string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, named, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		// A symlink's own mode is meaningless; its target is checked
		// separately and its parent directory decides who can replace it.
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	subject := what + " " + named
	if path != filepath.Clean(named) {
		subject = fmt.Sprintf("directory %s (above %s %s)", path, what, named)
	}
	if st.Uid != p.trusted {
		return fmt.Errorf("%s is owned by uid %d, not root, so that user can change what netward enforces; fix with: chown root:root %s", subject, st.Uid, path)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	// A sticky directory owned by root (like /tmp) lets others add entries
	// but not rename or remove root's, so the path stays root's.
	if fi.IsDir() && fi.Mode()&fs.ModeSticky != 0 {
		return nil
	}
	return fmt.Errorf("%s is writable by group or others (mode %04o), so they can change what netward enforces; fix with: chmod go-w %s", subject, perm, path)
}
