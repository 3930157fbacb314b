package svc

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/netward/netward/telemetry/flow"
)

// TestMain lets a test re-run this binary as a helper under a restricted
// capability set (NETWARD_SVC_CHILD=lookup LOCAL REMOTE): it attributes a TCP
// connection to its process with the agent's own code and prints the result.
func TestMain(m *testing.M) {
	if os.Getenv("NETWARD_SVC_CHILD") == "lookup" {
		os.Exit(lookupChild(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func lookupChild(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "want LOCAL REMOTE")
		return 2
	}
	local, err1 := netip.ParseAddrPort(args[0])
	remote, err2 := netip.ParseAddrPort(args[1])
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, err1, err2)
		return 2
	}
	sd, err := flow.NewSockDiag()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sd.Close()
	p, ok := sd.Lookup(6, local, remote) // IPPROTO_TCP
	if !ok {
		fmt.Fprintln(os.Stderr, "socket not found")
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(p)
	return 0
}
