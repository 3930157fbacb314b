package svc

import (
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry/flow"
)

func TestMain(m *testing.M) { os.Exit(e2e.Main(m)) }

// TestSockLookupChild is the child process of TestProcessAttributionCapabilities,
// run under a restricted capability set: it attributes the TCP connection
// NETWARD_SVC_LOOKUP ("LOCAL REMOTE") to its process with the agent's own
// code and prints the result as JSON.
func TestSockLookupChild(t *testing.T) {
	if !e2e.IsChild(t) {
		t.Skip("child process of TestProcessAttributionCapabilities")
	}
	l, r, _ := strings.Cut(os.Getenv("NETWARD_SVC_LOOKUP"), " ")
	local, err1 := netip.ParseAddrPort(l)
	remote, err2 := netip.ParseAddrPort(r)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	sd, err := flow.NewSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	p, ok := sd.Lookup(6, local, remote) // IPPROTO_TCP
	if !ok {
		t.Fatal("socket not found")
	}
	// The parent reads stdout: the test binary prints nothing else there
	// before this line, and its PASS line after.
	b, _ := json.Marshal(p)
	os.Stdout.Write(append(b, '\n'))
}
