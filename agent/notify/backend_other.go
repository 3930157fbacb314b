//go:build !linux && !windows

package notify

// DefaultBackend on platforms without a supported desktop mechanism: every
// notice is logged and recorded as an event.
func DefaultBackend() Backend {
	return noBackend{why: "desktop notifications are not supported on this platform"}
}
