package telemetry

import (
	"os"

	"golang.org/x/sys/unix"
)

// groupAt is the number of files from which one syncfs(2) replaces their
// fsyncs: a burst of small chunks is made durable by one call instead of one
// journal commit per file.
const groupAt = 4

// syncFiles makes the named files in dir durable: fsync each when they are
// few, else one syncfs(2) of dir's file system (which writes back every
// dirty file there, these included).
func syncFiles(dir string, paths []string) error {
	if len(paths) > groupAt {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		return unix.Syncfs(int(d.Fd()))
	}
	return fsyncEach(paths)
}
