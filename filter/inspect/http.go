package inspect

import (
	"bytes"
	"strings"
)

// MaxHTTPHeader bounds the request head read for the Host header; larger
// heads are ErrTooLarge (net/http's default is 1 MiB, but a real browser's
// request line and headers are well under 8 KiB).
const MaxHTTPHeader = 8 << 10

// HTTPRequest is what inspection needs from a plain HTTP/1.x request.
type HTTPRequest struct {
	Method string
	Host   string // from the Host header, or the absolute-form target; port removed
	Path   string // the path of the target, without query
}

// httpMethods are the request methods that start a request (RFC 9110 §9).
var httpMethods = []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

// LooksLikeHTTP reports whether b could be the start of an HTTP request,
// from the first bytes of its method.
func LooksLikeHTTP(b []byte) bool {
	for _, m := range httpMethods {
		n := min(len(b), len(m)+1)
		if n > 0 && string(b[:n]) == (m + " ")[:n] {
			return true
		}
	}
	return false
}

// ParseHTTPRequest reads the request line and Host header of an HTTP/1.x
// request (RFC 9112 §3, §3.2). It returns ErrNeedMore until the Host header
// line (or the end of the head) has arrived, ErrMalformed for anything that is
// not such a request, and ErrTooLarge past MaxHTTPHeader.
func ParseHTTPRequest(b []byte) (HTTPRequest, error) {
	if len(b) > MaxHTTPHeader {
		b = b[:MaxHTTPHeader]
	}
	if !LooksLikeHTTP(b) {
		return HTTPRequest{}, ErrMalformed
	}
	line, rest, ok := cutLine(b)
	if !ok {
		if len(b) == MaxHTTPHeader {
			return HTTPRequest{}, ErrTooLarge
		}
		return HTTPRequest{}, ErrNeedMore
	}
	method, after, ok1 := strings.Cut(string(line), " ")
	target, proto, ok2 := strings.Cut(after, " ")
	if !ok1 || !ok2 || target == "" || !strings.HasPrefix(proto, "HTTP/1.") || len(proto) != 8 {
		return HTTPRequest{}, ErrMalformed
	}
	req := HTTPRequest{Method: method}
	switch {
	case strings.HasPrefix(target, "/"):
		req.Path = target
	case len(target) > 7 && strings.EqualFold(target[:7], "http://"): // absolute-form (proxies)
		hp := target[7:]
		if i := strings.IndexByte(hp, '/'); i >= 0 {
			req.Host, req.Path = hp[:i], hp[i:]
		} else {
			req.Host, req.Path = hp, "/"
		}
	case method == "CONNECT" || target == "*":
		req.Path = ""
	default:
		return HTTPRequest{}, ErrMalformed
	}
	if i := strings.IndexAny(req.Path, "?#"); i >= 0 {
		req.Path = req.Path[:i]
	}
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			if len(b) == MaxHTTPHeader {
				return HTTPRequest{}, ErrTooLarge
			}
			return HTTPRequest{}, ErrNeedMore
		}
		if len(line) == 0 { // end of head without Host: HTTP/1.0
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return HTTPRequest{}, ErrMalformed
		}
		if strings.EqualFold(string(name), "host") {
			if req.Host == "" { // the absolute-form target wins (RFC 9112 §3.2.2)
				req.Host = string(bytes.TrimSpace(value))
			}
			break
		}
	}
	req.Host = stripPort(req.Host)
	if req.Host == "" && req.Method != "CONNECT" {
		return HTTPRequest{}, ErrMalformed
	}
	return req, nil
}

// cutLine splits b at the first CRLF (a bare LF is accepted, RFC 9112 §2.2).
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	line = b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, b[i+1:], true
}

// stripPort removes a ":port" suffix and IPv6 brackets.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.Count(h, ":") == 1 {
		return h[:i]
	}
	return h
}
