package config

import (
	"errors"
	"io/fs"
	"net/url"
	"os"
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

// nearestExisting is path, or its nearest ancestor that exists: the
// permission check judges a file or directory netward creates later by the
// directory it will be created in.
func nearestExisting(path string) string {
	dir := filepath.Clean(path)
	for {
		_, err := os.Lstat(dir)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || filepath.Dir(dir) == dir {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}
