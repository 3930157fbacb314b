package agent

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry"
)

// A machine record is written at start, again when an address or a user
// changes (not while nothing does), and after machineInterval regardless.
func TestMachineRecords(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Device.ID, cfg.Device.Name = "dev-m", "pc-m"
	cfg.Telemetry.MachineInterval = config.Duration(time.Hour)
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := e2e.NewClock(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	a.now = clk.Now
	var mu sync.Mutex
	users := []string{"alice"}
	addrs := []telemetry.IPAddress{{Interface: "eth0", Address: "192.0.2.10", Mac: "02:00:00:00:00:01"}}
	a.mach.read = func() ([]telemetry.IPAddress, []string) {
		mu.Lock()
		defer mu.Unlock()
		return append([]telemetry.IPAddress(nil), addrs...), append([]string(nil), users...)
	}
	a.mach.poll = 10 * time.Millisecond
	var recs []telemetry.Record
	a.addSink(func(r telemetry.Record) {
		if r.ActionType == telemetry.DeviceInfo {
			mu.Lock()
			recs = append(recs, r)
			mu.Unlock()
		}
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(recs) }
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	defer func() { cancel(); g.Wait() }()
	a.startMachine(gctx, g)
	if count() != 1 {
		t.Fatalf("%d machine records at start, want 1", count())
	}
	r := recs[0]
	if r.OSPlatform != runtime.GOOS || r.AgentVersion == "" || r.DeviceId != "dev-m" || len(r.IPAddresses) != 1 || r.LoggedOnUsers[0] != "alice" {
		t.Errorf("first record %+v", r)
	}
	time.Sleep(100 * time.Millisecond) // ten polls, nothing changed
	if count() != 1 {
		t.Fatalf("%d machine records while nothing changed, want 1", count())
	}
	mu.Lock()
	users = []string{"alice", "bob"}
	mu.Unlock()
	e2e.WaitFor(t, "a record for bob signing in", 10*time.Second, func() bool { return count() == 2 })
	mu.Lock()
	addrs = append(addrs, telemetry.IPAddress{Interface: "wlan0", Address: "198.51.100.7"})
	mu.Unlock()
	e2e.WaitFor(t, "a record for a new address", 10*time.Second, func() bool { return count() == 3 })
	clk.Add(time.Hour)
	e2e.WaitFor(t, "the hourly record", 10*time.Second, func() bool { return count() == 4 })
	mu.Lock()
	defer mu.Unlock()
	if last := recs[3]; len(last.LoggedOnUsers) != 2 || len(last.IPAddresses) != 2 {
		t.Errorf("hourly record %+v", last)
	}
}
