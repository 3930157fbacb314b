// Package version holds the build's version, set by the linker:
//
//	go build -ldflags "-X github.com/netward/netward/internal/version.Version=v1.2.3 -X github.com/netward/netward/internal/version.Commit=abc123"
package version

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags -X at build time; the Makefile does it.
var (
	Version = "dev"
	Commit  = ""
)

// Info is what `netward version` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build's version information, falling back to the VCS
// stamp Go embeds when the linker did not set a commit.
func Get() Info {
	c := Commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return Info{Version: Version, Commit: c, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}
