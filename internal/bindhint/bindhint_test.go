package bindhint

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
)

// A port taken by another listener is named as such, not as a privilege
// problem; the cause stays reachable.
func TestExplainAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = net.Listen("tcp", ln.Addr().String())
	if err == nil {
		t.Fatal("second listen succeeded")
	}
	got := Explain("tcp", ln.Addr().String(), err)
	if !errors.Is(got, syscall.EADDRINUSE) || !strings.Contains(got.Error(), "another program already listens on tcp "+ln.Addr().String()) ||
		strings.Contains(got.Error(), "root") {
		t.Errorf("Explain = %v", got)
	}
}

func TestExplainCauses(t *testing.T) {
	for _, tc := range []struct {
		addr string
		err  error
		want string
	}{
		{"127.0.0.154:80", syscall.EACCES, "port 80 is privileged: it needs root or CAP_NET_BIND_SERVICE"},
		{"127.0.0.1:8080", syscall.EACCES, "the system refused tcp 127.0.0.1:8080 to this user"},
		{"192.0.2.1:53", syscall.EADDRNOTAVAIL, "this host has no address 192.0.2.1:53"},
		{"127.0.0.1:53", errors.New("something else"), "something else"},
	} {
		if got := Explain("tcp", tc.addr, tc.err); !strings.HasSuffix(got.Error(), tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("Explain(%s, %v) = %v, want …%s", tc.addr, tc.err, got, tc.want)
		}
	}
	if Explain("tcp", "x:1", nil) != nil {
		t.Error("Explain(nil) != nil")
	}
}
