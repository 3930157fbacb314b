package flow

import (
	"net/netip"
	"testing"

	"github.com/ti-mo/conntrack"

	"github.com/netward/netward/telemetry"
)

type fakeProcs struct{ calls int }

func (f *fakeProcs) Lookup(uint8, netip.AddrPort, netip.AddrPort) (Process, bool) {
	f.calls++
	return Process{PID: 7, FileName: "curl", Account: "alice"}, true
}

func flowOf(id uint32, sent, recv uint64) *conntrack.Flow {
	f := &conntrack.Flow{ID: id}
	f.TupleOrig.IP.SourceAddress = netip.MustParseAddr("192.0.2.10")
	f.TupleOrig.IP.DestinationAddress = netip.MustParseAddr("203.0.113.5")
	f.TupleOrig.Proto.Protocol = 6
	f.TupleOrig.Proto.SourcePort = 50000
	f.TupleOrig.Proto.DestinationPort = 443
	f.CountersOrig.Bytes, f.CountersReply.Bytes = sent, recv
	return f
}

// Dumps report byte deltas, the DESTROY reports the rest, and the sum over a
// flow's records equals its final counters. Attribution happens once, at
// start, and survives until the flow ends.
func TestReportDeltas(t *testing.T) {
	procs := &fakeProcs{}
	c := New(Config{Procs: procs, Names: names{netip.MustParseAddr("203.0.113.5"): "files.example"}, MaxFlows: 2})
	var got []telemetry.Record
	emit := func(r telemetry.Record) bool { got = append(got, r); return true }
	c.started(flowOf(1, 0, 0))
	c.report(flowOf(1, 100, 1000), false, emit)
	c.report(flowOf(1, 100, 1000), false, emit) // nothing new: no record
	c.report(flowOf(1, 150, 4000), true, emit)
	if len(got) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(got), got)
	}
	var s, r int64
	for _, rec := range got {
		s += rec.BytesSent
		r += rec.BytesReceived
		if rec.InitiatingProcessId != 7 || rec.RemoteUrl != "files.example" || rec.RemotePort != 443 || rec.LocalIP != "192.0.2.10" {
			t.Errorf("record %+v", rec)
		}
	}
	if s != 150 || r != 4000 || procs.calls != 1 {
		t.Errorf("sums %d/%d with %d lookups, want 150/4000 with 1", s, r, procs.calls)
	}
	// The table is bounded: a third concurrent flow is counted, not tracked.
	c.started(flowOf(2, 0, 0))
	c.started(flowOf(3, 0, 0))
	c.started(flowOf(4, 0, 0))
	if st := c.Stats(); st.Flows != 2 || st.FlowsLimit != 1 {
		t.Errorf("stats %+v, want 2 tracked and 1 refused", st)
	}
}

type connNames map[uint16]string // by local port

func (c connNames) LookupConn(_ uint8, local, _ netip.AddrPort) (string, bool) {
	n, ok := c[local.Port()]
	return n, ok
}

// A flow is named by what inspection read from it (SNI) before the DNS
// map; an unnamed one is counted; the agent's own flows (by conntrack mark
// or by process) and loopback ones are not reported at all.
func TestReportNamesAndLeavesOutOwnTraffic(t *testing.T) {
	procs := &fakeProcs{}
	c := New(Config{Procs: procs, OwnPID: 7, OwnMark: 0x6e770010, SkipLoopback: true})
	var got []telemetry.Record
	emit := func(r telemetry.Record) bool { got = append(got, r); return true }
	own := flowOf(1, 10, 20)
	own.Mark = 0x6e770010
	c.report(own, true, emit)
	c.report(flowOf(2, 10, 20), true, emit) // pid 7: the agent
	if len(got) != 0 || c.Stats().Own != 2 {
		t.Fatalf("the agent's own flows were reported: %+v (own %d)", got, c.Stats().Own)
	}
	lo := flowOf(3, 10, 20)
	lo.TupleOrig.IP.SourceAddress, lo.TupleOrig.IP.DestinationAddress = netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.153")
	c2 := New(Config{Procs: &fakeProcs{}, SkipLoopback: true,
		Names:     names{netip.MustParseAddr("203.0.113.5"): "cdn.example"},
		ConnNames: connNames{50001: "www.example"}})
	c2.report(lo, true, emit)
	if len(got) != 0 {
		t.Fatalf("a loopback flow was reported: %+v", got)
	}
	named := flowOf(4, 10, 20)
	named.TupleOrig.Proto.SourcePort = 50001
	c2.report(named, true, emit)
	c2.report(flowOf(5, 10, 20), true, emit)
	unnamed := flowOf(6, 10, 20)
	unnamed.TupleOrig.IP.DestinationAddress = netip.MustParseAddr("198.51.100.9")
	c2.report(unnamed, true, emit)
	if len(got) != 3 || got[0].RemoteUrl != "www.example" || got[1].RemoteUrl != "cdn.example" || got[2].RemoteUrl != "" {
		t.Fatalf("records %+v, want www.example (SNI), cdn.example (DNS), unnamed", got)
	}
	if st := c2.Stats(); st.Unnamed != 1 || st.Records != 3 {
		t.Errorf("stats %+v, want 1 unnamed of 3", st)
	}
}

// Flows left out by their mark or as loopback are not kept: a flood of
// them (a local resolver forwarding from a new port per query) leaves the
// table empty and every place to the flows it reports, and each is counted
// once, when it ends (issue 21: 65,536 kept states were 9 MB of the agent's
// heap).
func TestLeftOutFlowsAreNotKept(t *testing.T) {
	c := New(Config{Procs: &fakeProcs{}, OwnMark: 0x6e770010, SkipLoopback: true, MaxFlows: 100})
	var got []telemetry.Record
	emit := func(r telemetry.Record) bool { got = append(got, r); return true }
	const n = 1000
	flows := make([]*conntrack.Flow, 0, 2*n)
	for i := range n {
		lo := flowOf(uint32(2*i+1), 10, 20)
		lo.TupleOrig.IP.SourceAddress, lo.TupleOrig.IP.DestinationAddress = netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1")
		own := flowOf(uint32(2*i+2), 10, 20)
		own.Mark = 0x6e770010
		flows = append(flows, lo, own)
	}
	for _, f := range flows {
		c.started(f) // NEW
	}
	if st := c.Stats(); st.Flows != 0 || st.FlowsLimit != 0 {
		t.Fatalf("after %d left-out flows: %d tracked, %d refused; want none", len(flows), st.Flows, st.FlowsLimit)
	}
	other := flowOf(5000, 0, 0)
	c.started(other)
	for _, f := range flows {
		c.report(f, false, emit) // a dump
		c.report(f, true, emit)  // DESTROY
	}
	c.report(flowOf(5000, 100, 200), true, emit)
	if st := c.Stats(); len(got) != 1 || got[0].BytesSent != 100 || st.Own != 2*n || st.Flows != 0 {
		t.Fatalf("records %+v, stats %+v; want the other process's flow alone, %d left out", got, st, 2*n)
	}
}
