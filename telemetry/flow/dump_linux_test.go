package flow

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/netward/netward/internal/e2e"
	"github.com/netward/netward/telemetry"
)

// A record the consumer refuses (a full telemetry queue) leaves the flow's
// counters where they were: the next dump reports those bytes, not only the
// ones moved since.
func TestRefusedRecordKeepsItsBytes(t *testing.T) {
	c := New(Config{})
	var got []telemetry.Record
	accept := func(r telemetry.Record) bool { got = append(got, r); return true }
	refuse := func(telemetry.Record) bool { return false }
	c.dumpGen++
	if c.report(flowOf(1, 100, 1000), false, refuse) {
		t.Error("report says a refused record was taken")
	}
	c.dumpGen++
	c.report(flowOf(1, 150, 1500), false, accept)
	c.report(flowOf(1, 200, 2000), true, accept)
	var s, r int64
	for _, rec := range got {
		s, r = s+rec.BytesSent, r+rec.BytesReceived
	}
	if len(got) != 2 || s != 200 || r != 2000 {
		t.Errorf("records %+v: %d/%d bytes; want 2 records summing to 200/2000", got, s, r)
	}
	if st := c.Stats(); st.Refused != 1 || st.Records != 2 {
		t.Errorf("stats %+v, want 1 refused and 2 records", st)
	}
}

// dumpOf plays a whole dump that saw the given flows.
func dumpOf(c *Conntrack, emit func(telemetry.Record) bool, flows ...*conntrack.Flow) {
	c.dumpGen++
	for _, f := range flows {
		c.report(f, false, emit)
	}
	c.forgetUnseen()
}

// A flow one whole dump did not see is kept: a netlink dump can miss live
// entries of a table that changes under it, and a live flow forgotten would
// be reported again from its first byte. Two whole dumps in a row that miss
// it forget it.
func TestFlowForgottenAfterTwoMissedDumps(t *testing.T) {
	c := New(Config{})
	var got []telemetry.Record
	emit := func(r telemetry.Record) bool { got = append(got, r); return true }
	dumpOf(c, emit, flowOf(1, 100, 1000), flowOf(2, 10, 10))
	dumpOf(c, emit, flowOf(2, 10, 10))
	if st := c.Stats(); st.Flows != 2 {
		t.Fatalf("after one dump that missed flow 1: %d tracked, want 2", st.Flows)
	}
	c.started(flowOf(3, 0, 0)) // a NEW event between dumps
	// The dump that misses flow 1 again forgets it; flow 3, missed once, stays.
	dumpOf(c, emit, flowOf(2, 10, 10))
	if st := c.Stats(); st.Flows != 2 {
		t.Fatalf("after two dumps that missed flow 1 and one that missed flow 3: %d tracked, want 2", st.Flows)
	}
	dumpOf(c, emit, flowOf(2, 10, 10))
	if st := c.Stats(); st.Flows != 1 {
		t.Fatalf("after two dumps that missed flow 3: %d tracked, want 1", st.Flows)
	}
	// Flow 1 missed by one dump only, then seen: its bytes are not counted
	// twice.
	c2 := New(Config{})
	got = nil
	dumpOf(c2, emit, flowOf(1, 100, 1000))
	dumpOf(c2, emit)
	dumpOf(c2, emit, flowOf(1, 120, 1000))
	var s int64
	for _, r := range got {
		s += r.BytesSent
	}
	if s != 120 {
		t.Errorf("a flow missed by one dump reported %d bytes sent in all, want 120: %+v", s, got)
	}
	// A failed (incomplete) dump forgets nothing and does not count as whole.
	c2.dumpGen++ // saw nothing, failed
	dumpOf(c2, emit)
	if st := c2.Stats(); st.Flows != 1 {
		t.Errorf("after a failed dump and one whole dump that missed it: %d tracked, want 1", st.Flows)
	}
}

// nlmsg builds one netlink message.
func nlmsg(typ uint16, seq uint32, data []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(data)+3)
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(data)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_MULTI)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, data...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func errnoPayload(e int32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(e))
	return b
}

// The kernel can end a dump with an error in NLMSG_DONE's payload: that is
// an incomplete table, not its end. A flow message that does not decode is
// counted, not skipped silently.
func TestParseDumpEnds(t *testing.T) {
	const seq = 7
	const ctGet = 1<<8 | ipctnlMsgCtGet // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET
	none := func(*conntrack.Flow) { t.Error("a flow was decoded from nothing") }

	done, bad, err := parseDump(nlmsg(unix.NLMSG_DONE, seq, errnoPayload(0)), seq, none)
	if !done || bad != 0 || err != nil {
		t.Errorf("NLMSG_DONE 0: done %v, %d undecoded, err %v; want the end", done, bad, err)
	}
	done, _, err = parseDump(nlmsg(unix.NLMSG_DONE, seq, errnoPayload(-int32(unix.ENOMEM))), seq, none)
	if !done || !errors.Is(err, syscall.ENOMEM) {
		t.Errorf("NLMSG_DONE -ENOMEM: done %v, err %v; want ENOMEM", done, err)
	}
	done, _, err = parseDump(nlmsg(unix.NLMSG_ERROR, seq, append(errnoPayload(-int32(unix.EBUSY)), make([]byte, 16)...)), seq, none)
	if !done || !errors.Is(err, syscall.EBUSY) {
		t.Errorf("NLMSG_ERROR -EBUSY: done %v, err %v; want EBUSY", done, err)
	}
	// An answer to an abandoned dump (another sequence number) is ignored.
	done, _, err = parseDump(nlmsg(unix.NLMSG_DONE, seq+1, errnoPayload(-int32(unix.ENOMEM))), seq, none)
	if done || err != nil {
		t.Errorf("another dump's end: done %v, err %v; want it ignored", done, err)
	}
	// A flow message whose attributes do not decode: an nfgenmsg, then an
	// attribute whose length runs past the message.
	garbage := []byte{unix.AF_INET, 0, 0, 0, 0xff, 0x00, 0x01, 0x00}
	b := append(nlmsg(ctGet, seq, garbage), nlmsg(unix.NLMSG_DONE, seq, errnoPayload(0))...)
	done, bad, err = parseDump(b, seq, none)
	if !done || bad != 1 || err != nil {
		t.Errorf("a garbled flow then the end: done %v, %d undecoded, err %v; want 1 undecoded", done, bad, err)
	}
}

// A dump of many flows that moved bytes, into a pipeline whose queue is far
// smaller than the dump, loses nothing when paced (Config.Pace waiting for
// room, as the agent wires it): it was refused by the tens of thousands.
func TestPacedDumpLosesNothing(t *testing.T) {
	e2e.Require(t, "nft") // root, ip, and a ct rule for conntrack to track the namespace
	ns := e2e.NewNetns(t, "nwpace")
	ns.Must(t, "nft", "add table inet nwpace")
	ns.Must(t, "nft", "add chain inet nwpace out { type filter hook output priority 0; }")
	ns.Must(t, "nft", "add rule inet nwpace out ct state new counter")
	nsPath := "/run/netns/" + ns.Name
	p, err := telemetry.New(telemetry.Config{Dir: t.TempDir(), QueueRecords: 256})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	src := New(Config{Netns: nsPath, Pace: func() { p.WaitRoom(ctx.Done(), 64) }})
	if err := src.EnableAccounting(); err != nil {
		t.Fatal(err)
	}
	// n UDP flows with bytes: one datagram each, from its own port (no
	// listener: the flow exists all the same).
	const n = 3000
	inNetns(t, nsPath, func() {
		for range n {
			c, err := net.Dial("udp4", "127.0.0.1:9")
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = c.Write([]byte("x"))
			c.Close()
		}
	})
	conn, err := src.dialDump()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	src.dump(conn, func(r telemetry.Record) bool { return p.Add(r) })
	st := src.Stats()
	// (Two sockets can get the same random port: one flow for both.)
	if st.Records < n*9/10 || st.Records != uint64(st.Flows) || st.Refused != 0 {
		t.Errorf("dump of %d flows: %+v; want every record taken", n, st)
	}
	if d := p.Status().DroppedQueueFull; d != 0 {
		t.Errorf("the pipeline refused %d records of the dump", d)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Error(err)
	}
}
