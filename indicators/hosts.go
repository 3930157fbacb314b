package indicators

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/netward/netward/filter"
)

// hostsLocal are the names every hosts file maps to the machine itself; they
// are not indicators (blocking "localhost" would break the host).
var hostsLocal = map[string]bool{
	"localhost": true, "localhost.localdomain": true, "local": true, "broadcasthost": true,
	"ip6-localhost": true, "ip6-loopback": true, "ip6-localnet": true, "ip6-mcastprefix": true,
	"ip6-allnodes": true, "ip6-allrouters": true, "ip6-allhosts": true, "0.0.0.0": true,
}

// maxLine bounds one line of a text list.
const maxLine = 64 << 10

// ParseHosts parses a hosts file ("0.0.0.0 name", "127.0.0.1 name1 name2",
// "# comments") or a plain list (one domain, IP address or CIDR prefix per
// line), giving every entry o.Action (default Block). Both forms may be
// mixed. Problems are reported as file:line:column.
func ParseHosts(name string, r io.Reader, o Options) (*Set, error) {
	s := &Set{Name: name}
	act := o.action()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\ufeff"))
		}
		if i := bytes.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := splitFields(text)
		if len(fields) == 0 {
			continue
		}
		names := fields
		if len(fields) > 1 {
			// hosts form: the first field is the address the names map to.
			if _, err := netip.ParseAddr(string(fields[0].s)); err != nil {
				s.errorf(Position{Line: line, Column: fields[0].col}, "%q is not an IP address; a hosts line reads \"0.0.0.0 name [name...]\" and a list line holds one entry", fields[0].s)
				continue
			}
			names = fields[1:]
		}
		for _, f := range names {
			v := string(f.s)
			if len(fields) > 1 && hostsLocal[strings.ToLower(v)] {
				continue
			}
			typ := "DomainName"
			if _, err := filter.ParsePrefix(v); err == nil {
				typ = "IpAddress"
			} else if strings.Contains(v, "/") {
				typ = "Url"
			}
			l, c := line, f.col
			s.add(rawFields{typ: typ, value: v, action: act.String(), id: fmt.Sprintf("%s:%d", baseName(name), l)},
				func(string) Position { return Position{Line: l, Column: c} }, l, c, 0, o)
		}
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			s.errorf(Position{Line: line + 1}, "line longer than %d bytes; the rest of the file is not read", maxLine)
		} else {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	s.checkDuplicates()
	s.sortProblems()
	return s, nil
}

type field struct {
	s   []byte
	col int // 1-based byte column
}

func splitFields(b []byte) []field {
	var out []field
	i := 0
	for i < len(b) {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r') {
			i++
		}
		start := i
		for i < len(b) && b[i] != ' ' && b[i] != '\t' && b[i] != '\r' {
			i++
		}
		if i > start {
			out = append(out, field{b[start:i], start + 1})
		}
	}
	return out
}
