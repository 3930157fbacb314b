package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// SecureDataDir creates the data directory 0700 if it does not exist and
// verifies, on the directory it opened (O_NOFOLLOW: never through a symlink),
// that this process owns it and nobody else can write it; then it refuses
// any file or directory inside (two levels: the stores, keys and the
// telemetry directories) owned by someone else or writable by others. The
// permission check before it judges a missing data directory by its parent,
// which may be a sticky /tmp: a user who creates the directory between that
// check and the first write would own it, and a store file planted there (an
// indicators.db holding an unsigned set) would be applied.
func SecureDataDir(dir string) error {
	if dir == "" {
		return nil
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if err := unix.Mkdir(dir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("data directory %s: create: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("data directory %s is a symlink or not a directory: netward uses only a real directory it owns; remove it, or set dataDir to one", dir)
	}
	if err != nil {
		return fmt.Errorf("data directory %s: open: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	me := uint32(os.Geteuid())
	if st.Uid != me {
		return fmt.Errorf("data directory %s is owned by uid %d, not by netward (uid %d): someone else created it, and could have planted files in it; remove it (rm -r %s) and start netward again", dir, st.Uid, me, dir)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("data directory %s is writable by group or others (mode %04o); fix with: chmod 700 %s", dir, st.Mode&0o7777, dir)
	}
	return checkEntries(dir, me)
}

// checkEntries refuses entries of dir (two levels deep) owned by another
// uid, and files or directories writable by group or others.
func checkEntries(dir string, me uint32) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed meanwhile (a spooled chunk uploaded)
				return nil
			}
			return fmt.Errorf("data directory %s: %w", dir, err)
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." {
			return nil
		}
		depth := 1
		for _, c := range rel {
			if c == filepath.Separator {
				depth++
			}
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("data directory %s: %w", dir, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Uid != me {
			return fmt.Errorf("%s in the data directory is owned by uid %d, not by netward (uid %d): it may have been planted; check it, then remove it or fix with: chown %d %s", path, st.Uid, me, me, path)
		}
		if fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s in the data directory is writable by group or others (mode %04o); fix with: chmod go-w %s", path, fi.Mode().Perm(), path)
		}
		if d.IsDir() && depth >= 2 {
			return filepath.SkipDir
		}
		return nil
	})
}
