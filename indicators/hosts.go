package indicators

import (
	"bufio"
	"bytes"
	"errors"
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
// mixed. Problems are reported as file:line:column; a bad line never stops
// the lines after it.
//
// A line holding only an IP address is ambiguous: in a list it is an IP
// indicator, in a hosts file a mapping that lost its names. It is loaded as
// an IpAddress indicator with a warning; the addresses hosts files map
// names to (0.0.0.0, ::, loopback) are warned about and not loaded, since
// blocking them means nothing.
func ParseHosts(name string, r io.Reader, o Options) (*Set, error) {
	s := &Set{Name: name}
	act := o.action()
	br := bufio.NewReaderSize(r, maxLine)
	line := 0
	for {
		text, err := br.ReadSlice('\n')
		if len(text) > 0 || err == nil || errors.Is(err, bufio.ErrBufferFull) {
			line++
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			s.reject(Position{Line: line}, "line longer than %d bytes; it is skipped", maxLine)
			for errors.Is(err, bufio.ErrBufferFull) { // the rest of the long line
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if err != nil {
				break
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		s.hostsLine(text, line, act, o)
		if err != nil {
			break
		}
	}
	s.checkDuplicates()
	s.sortProblems()
	return s, nil
}

// hostsLine adds the entries of one line of a hosts file or list.
func (s *Set) hostsLine(text []byte, line int, act filter.Action, o Options) {
	text = bytes.TrimSuffix(text, []byte("\n"))
	if line == 1 {
		text = bytes.TrimPrefix(text, []byte("\ufeff"))
	}
	if i := bytes.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	fields := splitFields(text)
	if len(fields) == 0 {
		return
	}
	names := fields
	if len(fields) > 1 {
		// hosts form: the first field is the address the names map to.
		if _, err := netip.ParseAddr(string(fields[0].s)); err != nil {
			s.reject(Position{Line: line, Column: fields[0].col}, "%q is not an IP address; a hosts line reads \"0.0.0.0 name [name...]\" and a list line holds one entry", fields[0].s)
			return
		}
		names = fields[1:]
	} else if a, err := netip.ParseAddr(string(fields[0].s)); err == nil {
		p := Position{Line: line, Column: fields[0].col}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsLoopback() {
			s.warnf(p, "%s alone on a line: a hosts line without names; nothing loaded (a hosts line reads \"0.0.0.0 name\")", a)
			return
		}
		s.warnf(p, "%s alone on a line is loaded as an IpAddress indicator (%s every connection to it); if this is a hosts file that lost its names, fix the line (\"0.0.0.0 name\")", a, act)
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
		s.add(rawFields{typ: typ, value: v, action: act.String(), id: fmt.Sprintf("%s:%d", baseName(s.Name), l)},
			func(string) Position { return Position{Line: l, Column: c} }, l, c, 0, o)
	}
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
