//go:build !windows

package winsvc

import "errors"

// SecureDir is Windows-only.
func SecureDir(string) error {
	return errors.New("winsvc.SecureDir: applies only on Windows")
}
