package osinfo

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// prettyName reads PRETTY_NAME from an os-release file: shell-style
// assignments, the value optionally quoted with shell escapes
// (os-release(5)).
func prettyName(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "PRETTY_NAME=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if v[0] == '"' {
				if u, err := strconv.Unquote(v); err == nil {
					return u
				}
			}
			return v[1 : len(v)-1]
		}
		return v
	}
	return ""
}
