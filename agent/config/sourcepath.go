package config

import (
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
)

// FileSourcePath returns the local path of a file:// indicators.source (the
// permission check covers it like the config file). ok is false for other
// sources and for malformed file URLs (Validate reports those).
func FileSourcePath(src string) (string, bool) {
	if !strings.HasPrefix(strings.ToLower(src), "file://") {
		return "", false
	}
	u, err := url.Parse(src)
	if err != nil || u.Host != "" || u.Path == "" {
		return "", false
	}
	p := u.Path
	// file:///C:/dir/x.csv has the path /C:/dir/x.csv (RFC 8089 appendix E.2).
	if runtime.GOOS == "windows" && len(p) > 2 && p[0] == '/' && p[2] == ':' {
		p = p[1:]
	}
	return filepath.FromSlash(p), true
}
