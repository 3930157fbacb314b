package warnpage

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzHandler feeds the page server arbitrary hosts, paths and bodies: it must
// answer every request with a known status and never create a bypass without
// a token it minted.
func FuzzHandler(f *testing.F) {
	f.Add("GET", "warned.test", "/x", "", "")
	f.Add("POST", "warned.test:80", continuePath, "token=abc&path=//evil", "http://warned.test")
	f.Add("POST", "[::1]:80", continuePath, "", "null")
	f.Add("GET", "xn--nxasmq6b.test", statusPath, "", "")
	p := newPolicy(f)
	s := newServer(f, p, time.Now)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, host, path, body, origin string) {
		switch method {
		case "GET", "POST", "HEAD", "PUT":
		default:
			method = "GET"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		r, err := http.NewRequest(method, "http://sink"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		r.Host = host
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 303, 400, 403, 404, 405, 413, 500:
		default:
			t.Fatalf("%s %s Host %q: status %d", method, path, host, w.Code)
		}
		if p.continues() != 0 {
			t.Fatalf("a fuzzed request created a bypass: %s %q %q", method, host, body)
		}
	})
}
