package inspect

import (
	"errors"
	"testing"
)

func TestParseConnect(t *testing.T) {
	hello := "\x16\x03\x01"
	tests := []struct {
		in   string
		want ConnectRequest
		err  error
	}{
		{"CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\nUser-Agent: curl/8\r\n\r\n" + hello,
			ConnectRequest{Host: "www.example.com", Port: 443, HeadLen: 87}, nil},
		{"CONNECT [2001:db8::5]:8443 HTTP/1.0\n\n", ConnectRequest{Host: "2001:db8::5", Port: 8443, HeadLen: 37}, nil},
		{"CONNECT 203.0.113.5:443 HTTP/1.1\r\n\r\n", ConnectRequest{Host: "203.0.113.5", Port: 443, HeadLen: 36}, nil},
		{"CONN", ConnectRequest{}, ErrNeedMore},
		{"CONNECT www.example.com:443 HTTP/1.1\r\nHost: x\r\n", ConnectRequest{}, ErrNeedMore},
		{"GET / HTTP/1.1\r\n\r\n", ConnectRequest{}, ErrMalformed},
		{"CONNECT www.example.com HTTP/1.1\r\n\r\n", ConnectRequest{}, ErrMalformed},
		{"CONNECT :443 HTTP/1.1\r\n\r\n", ConnectRequest{}, ErrMalformed},
		{"CONNECT a.example:0 HTTP/1.1\r\n\r\n", ConnectRequest{}, ErrMalformed},
		{"CONNECT a.example:99999 HTTP/1.1\r\n\r\n", ConnectRequest{}, ErrMalformed},
		{"CONNECT a.example:443 SPDY/3\r\n\r\n", ConnectRequest{}, ErrMalformed},
		{"CONNECT a.example:443 HTTP/1.1\r\nbad header\r\n\r\n", ConnectRequest{}, ErrMalformed},
		{"CONNECT a.example:443 HTTP/1.1\r\nX: " + string(make([]byte, MaxHTTPHeader)), ConnectRequest{}, ErrTooLarge},
	}
	if b := tests[0].in; b[87:] != hello {
		t.Fatalf("test head length: %q", b[87:])
	}
	for _, tt := range tests {
		got, err := ParseConnect([]byte(tt.in))
		if !errors.Is(err, tt.err) && err != tt.err || got != tt.want {
			t.Errorf("ParseConnect(%.50q) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// FuzzParseConnect: never panics; an accepted head is inside the input and
// names a host and a port.
func FuzzParseConnect(f *testing.F) {
	f.Add([]byte("CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n\r\n\x16\x03\x01"))
	f.Add([]byte("CONNECT [::1]:1 HTTP/1.0\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseConnect(b)
		if err != nil {
			return
		}
		if r.HeadLen <= 0 || r.HeadLen > len(b) || r.Host == "" || r.Port == 0 {
			t.Fatalf("ParseConnect(%q) = %+v", b, r)
		}
	})
}
