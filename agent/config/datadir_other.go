//go:build !linux

package config

import (
	"fmt"
	"os"
)

// SecureDataDir creates the data directory. The ownership checks of the
// Linux version are not implemented here: on Windows `netward install`
// locks the directory down (winsvc.SecureDir) and CheckPermissions reads
// its ACL at start.
func SecureDataDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	return nil
}
