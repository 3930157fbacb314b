// Package blocklist reads the benchmark blocklists (scripts/benchdns,
// scripts/dnsbench): one domain per line, or a hosts file.
package blocklist

import (
	"bufio"
	"errors"
	"os"
	"strings"
)

// Read returns the names of the list at path, skipping blank lines and
// comments; a hosts line ("0.0.0.0 name") gives its name.
func Read(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if fs := strings.Fields(l); len(fs) == 2 && (fs[0] == "0.0.0.0" || fs[0] == "127.0.0.1") {
			l = fs[1]
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("the blocklist " + path + " is empty")
	}
	return out, nil
}
