package agent

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/internal/osinfo"
	"github.com/netward/netward/internal/version"
	"github.com/netward/netward/telemetry"
	"github.com/netward/netward/telemetry/machine"
)

// Machine records (ActionType DeviceInfo, CONTRACT §6): who and what this
// machine is, for the console's machine view — at start, every
// telemetry.machineInterval, and as soon as something in it changes (an
// address, a user signing in or out, a new policy sequence). Changes are
// looked for every machinePoll and at every decision change.

// machineState is the machine record component's state.
type machineState struct {
	// read gathers the host's side (addresses, users); tests replace it.
	read func() (addrs []telemetry.IPAddress, users []string)
	poll time.Duration

	osOnce sync.Once
	os     string
}

const machinePoll = 30 * time.Second

// readHost is the real machineState.read. A part that cannot be read is
// left empty (and said once in the log by startMachine), never guessed.
func readHost() ([]telemetry.IPAddress, []string) {
	addrs, _ := machine.Addresses()
	users, _ := machine.Users()
	return addrs, users
}

// machineRecord builds the record from the agent's state and the host's.
func (a *Agent) machineRecord() telemetry.Record {
	read := a.mach.read
	if read == nil {
		read = readHost
	}
	addrs, users := read()
	return telemetry.Record{
		ActionType:     telemetry.DeviceInfo,
		OSPlatform:     osinfo.Platform(),
		OSVersion:      a.osVersion(),
		AgentVersion:   version.Get().Version,
		PolicySequence: a.indicatorStatus().Sequence,
		IPAddresses:    addrs,
		LoggedOnUsers:  users,
	}
}

// osVersion is read once (it changes with a reboot, which restarts the agent).
func (a *Agent) osVersion() string {
	a.mach.osOnce.Do(func() { a.mach.os = osinfo.Version() })
	return a.mach.os
}

// sameMachine reports whether two machine records say the same (time aside).
func sameMachine(x, y telemetry.Record) bool {
	return x.OSVersion == y.OSVersion && x.AgentVersion == y.AgentVersion && x.PolicySequence == y.PolicySequence &&
		slices.Equal(x.IPAddresses, y.IPAddresses) && slices.Equal(x.LoggedOnUsers, y.LoggedOnUsers)
}

// startMachine writes the first machine record now and keeps the others
// coming until ctx ends.
func (a *Agent) startMachine(ctx context.Context, g *errgroup.Group) {
	if _, err := machine.Users(); err != nil {
		a.log.Info("machine records will not list signed-in users", "err", err)
	}
	last := a.machineRecord()
	a.emit(last)
	lastAt := a.now()
	poll := a.mach.poll
	if poll <= 0 {
		poll = machinePoll
	}
	g.Go(func() error {
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			changed := a.dp.Changed()
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			case <-changed:
			}
			cur := a.machineRecord()
			if sameMachine(cur, last) && a.now().Sub(lastAt) < time.Duration(a.cfg.Telemetry.MachineInterval) {
				continue
			}
			a.emit(cur)
			last, lastAt = cur, a.now()
		}
	})
}
