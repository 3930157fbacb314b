package inspect

import (
	"errors"
	"testing"
)

func TestParseHTTPRequest(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		host, path string
		err        error
	}{
		{"curl capture", string(readCapture(t, "curl-http.bin")), "www.example.com", "/blocked/path", nil},
		{"simple", "GET /a/b HTTP/1.1\r\nHost: Example.com\r\n\r\n", "Example.com", "/a/b", nil},
		{"host after others", "POST /x?y=1 HTTP/1.1\r\nUser-Agent: t\r\nHost: h.example:8080\r\n", "h.example", "/x", nil},
		{"absolute form wins", "GET http://abs.example/p HTTP/1.1\r\nHost: other\r\n\r\n", "abs.example", "/p", nil},
		{"ipv6 host", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", "2001:db8::1", "/", nil},
		{"bare LF", "GET / HTTP/1.0\nHost: lf.example\n\n", "lf.example", "/", nil},
		{"partial line", "GET /abc HT", "", "", ErrNeedMore},
		{"partial method", "GE", "", "", ErrNeedMore},
		{"no host yet", "GET / HTTP/1.1\r\nAccept: */*\r\n", "", "", ErrNeedMore},
		{"no host at all", "GET / HTTP/1.0\r\n\r\n", "", "", ErrMalformed},
		{"not http", "\x16\x03\x01\x02\x00", "", "", ErrMalformed},
		{"bad proto", "GET / SPDY/3\r\n", "", "", ErrMalformed},
		{"bad header", "GET / HTTP/1.1\r\nno colon here\r\n", "", "", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseHTTPRequest([]byte(tc.in))
			if !errors.Is(err, tc.err) || (err == nil && (r.Host != tc.host || r.Path != tc.path)) {
				t.Errorf("ParseHTTPRequest(%q) = %+v, %v; want host %q path %q err %v", tc.in, r, err, tc.host, tc.path, tc.err)
			}
		})
	}
	long := make([]byte, MaxHTTPHeader+10)
	copy(long, "GET /")
	for i := 5; i < len(long); i++ {
		long[i] = 'a'
	}
	if _, err := ParseHTTPRequest(long); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized request line = %v, want ErrTooLarge", err)
	}
}

func FuzzParseHTTPRequest(f *testing.F) {
	f.Add(readCapture(f, "curl-http.bin"))
	f.Add([]byte("GET http://a/b HTTP/1.1\r\nHost: [::1]\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseHTTPRequest(b)
		if err == nil && r.Host == "" && r.Method != "CONNECT" {
			t.Errorf("success without a host: %+v", r)
		}
	})
}
