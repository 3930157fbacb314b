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
		dir := filepath.Clean(cfg.DataDir)
		for {
			_, err := os.Lstat(dir)
			if err == nil || !errors.Is(err, fs.ErrNotExist) || filepath.Dir(dir) == dir {
				break
			}
			dir = filepath.Dir(dir)
		}
		if err := p.checkTree(dir, "data directory"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
