//go:build !windows

package winsvc

import "errors"

// Configure is Windows-only.
func Configure(string) error {
	return errors.New("winsvc.Configure: the Windows service configuration applies only on Windows")
}
