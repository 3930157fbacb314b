// Package osinfo names the operating system the agent runs on, for the
// check-in header of the feed (CONTRACT §5 Netward-Agent) and device
// records: the platform (GOOS) and a human-readable version.
package osinfo

import "runtime"

// Platform is the GOOS-style platform name: "linux", "windows", "darwin".
func Platform() string { return runtime.GOOS }

// Version is the operating system's version as its users know it
// ("Debian GNU/Linux 12 (bookworm)", "10.0.22631"), or "" when it cannot be
// read. It reads the system each call; callers keep the result.
func Version() string { return version() }
