//go:build !linux

package telemetry

// syncFiles makes the named files durable, one fsync (FlushFileBuffers on
// Windows) each: there is no syncfs(2) to group them. Untested here.
func syncFiles(dir string, paths []string) error { return fsyncEach(paths) }
