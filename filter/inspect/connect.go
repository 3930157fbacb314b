package inspect

import (
	"bytes"
	"net"
	"strconv"
	"strings"
)

// ConnectRequest is an HTTP CONNECT request to a forward proxy (RFC 9110
// §9.3.6): the tunnel's target, and where the tunnel's bytes start.
type ConnectRequest struct {
	Host string // the target host, without brackets; an IP literal stays one
	Port uint16
	// HeadLen is the length of the request head (through the empty line):
	// the client's first tunnelled bytes (a TLS ClientHello) follow it.
	HeadLen int
}

// ParseConnect reads a CONNECT request head: "CONNECT host:port HTTP/1.x",
// header lines, an empty line. It returns ErrNeedMore until the head is
// complete, ErrMalformed for anything else (another method, a target that
// is not authority-form, RFC 9112 §3.2.3), and ErrTooLarge past
// MaxHTTPHeader.
func ParseConnect(b []byte) (ConnectRequest, error) {
	const prefix = "CONNECT "
	if n := min(len(b), len(prefix)); string(b[:n]) != prefix[:n] {
		return ConnectRequest{}, ErrMalformed
	}
	head := b
	if len(head) > MaxHTTPHeader {
		head = head[:MaxHTTPHeader]
	}
	line, rest, ok := cutLine(head)
	if !ok {
		return ConnectRequest{}, needMoreOrTooLarge(head)
	}
	target, proto, ok := strings.Cut(string(line[len(prefix):]), " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") || len(proto) != 8 {
		return ConnectRequest{}, ErrMalformed
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" {
		return ConnectRequest{}, ErrMalformed
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return ConnectRequest{}, ErrMalformed
	}
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return ConnectRequest{}, needMoreOrTooLarge(head)
		}
		if len(line) == 0 {
			break
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return ConnectRequest{}, ErrMalformed
		}
	}
	return ConnectRequest{Host: host, Port: uint16(p), HeadLen: len(head) - len(rest)}, nil
}

func needMoreOrTooLarge(head []byte) error {
	if len(head) == MaxHTTPHeader {
		return ErrTooLarge
	}
	return ErrNeedMore
}
