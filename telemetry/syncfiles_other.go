//go:build !linux

package telemetry

import (
	"errors"
	"os"
)

// syncFiles makes the named files durable, one fsync (FlushFileBuffers on
// Windows) each: there is no syncfs(2) to group them. Untested here.
func syncFiles(dir string, paths []string) error {
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
