package flow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/netward/netward/telemetry"
)

// Config configures a Conntrack source.
type Config struct {
	// Names maps a remote address to the name it was resolved from.
	Names telemetry.NameLookup
	// Procs attributes new flows to processes; nil leaves process fields empty.
	Procs ProcessLookup
	// DumpInterval is how often long-lived flows report their byte deltas
	// (default 5m). A dump also heals lost events.
	DumpInterval time.Duration
	// MaxFlows bounds the flows tracked in memory (default 65536).
	MaxFlows int
	// ReadBuffer is the event socket's receive buffer (default 4 MiB): the
	// burst of events the kernel can queue before it reports ENOBUFS.
	ReadBuffer int
	// Netns, when set, is a network namespace file (/run/netns/NAME) to
	// watch instead of the agent's own namespace.
	Netns string
	// ConnNames names a connection by what inspection read from it
	// (SNI, QUIC, HTTP Host); it is asked when the flow is reported and
	// wins over Names (the DNS answer that returned the address).
	ConnNames ConnNameLookup
	// Own leaves out the agent's own traffic (upstream DNS, feed,
	// uploads): flows whose conntrack mark is OwnMark (OwnMarkTable sets it
	// from the agent's socket mark) or whose socket belongs to OwnPID.
	// Zero values leave nothing out.
	OwnMark uint32
	OwnPID  int
	// SkipLoopback leaves out flows between two loopback addresses (a
	// host's local services, the DNS proxy itself): not network traffic.
	SkipLoopback bool
	// Pace, when set, is called by a table dump between the kernel's
	// datagrams (~100 flows each), for the records' consumer to take what
	// was emitted so far: a dump of a big table reports tens of thousands
	// of flows at once, which overflowed the telemetry queue (28,000 to
	// 37,000 of 50,000 refused with its bound at 8,192). The agent waits
	// for room in the pipeline (telemetry.Pipeline.WaitRoom).
	Pace func()
	Log  *slog.Logger
	Now  func() time.Time
}

// Conntrack is the Linux flow source.
type Conntrack struct {
	cfg   Config
	mu    sync.Mutex
	flows map[uint32]*flowState
	// dumpGen numbers the table dumps; a tracked flow a dump saw carries
	// its number (flowState.dumped), so the flows it did not see are
	// forgotten without a set of every flow in the table. wholeGen is the
	// number of the last dump read whole: a flow is forgotten only when
	// two whole dumps in a row did not see it (dump).
	dumpGen, wholeGen uint32
	// dumpBuf is the dump's read buffer (one datagram of the kernel's
	// answer), kept between dumps; used by the Run goroutine only.
	dumpBuf []byte
	// leftOut is what started returns for a flow left out by its
	// conntrack mark or as loopback (Config.OwnMark, SkipLoopback). Such
	// flows are not kept in the table: what leaves them out is in every
	// event and dump of the flow, so there is nothing to remember, and a
	// host's local services open them by the hundred thousand — a resolver
	// forwarding from a new port per query (dnsmasq, unbound) filled the
	// table's 65,536 places with them: 9 MB, the largest item of the
	// agent's heap in the DNS benchmark (issue 21, docs/dns.md).
	leftOut flowState

	events, overruns, dumps, records, dropped, unnamed, own, refused, undecoded atomic.Uint64
}

type flowState struct {
	proc           Process
	name           string
	skip           bool   // the agent's own (by process): not reported
	sent, received uint64 // already reported
	dumped         uint32 // the last dump that saw it, or the dump current when it started (Conntrack.dumpGen)
}

// New returns a source; Run starts it.
func New(cfg Config) *Conntrack {
	if cfg.DumpInterval <= 0 {
		cfg.DumpInterval = defaultDumpInterval
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = defaultMaxFlows
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 4 << 20
	}
	return &Conntrack{cfg: cfg, flows: make(map[uint32]*flowState)}
}

// Stats reports counters.
func (c *Conntrack) Stats() Stats {
	c.mu.Lock()
	n := len(c.flows)
	c.mu.Unlock()
	return Stats{Events: c.events.Load(), Overruns: c.overruns.Load(), Dumps: c.dumps.Load(),
		Records: c.records.Load(), Flows: n, FlowsLimit: c.dropped.Load(), Unnamed: c.unnamed.Load(), Own: c.own.Load(),
		Refused: c.refused.Load(), Undecoded: c.undecoded.Load()}
}

// EnableAccounting turns on per-flow byte counters and start timestamps
// (net.netfilter.nf_conntrack_acct and nf_conntrack_timestamp) in the
// watched namespace. Without acct every flow reports zero bytes.
func (c *Conntrack) EnableAccounting() error {
	return c.inNetns(func() error {
		var errs []error
		for _, k := range []string{"nf_conntrack_acct", "nf_conntrack_timestamp"} {
			p := filepath.Join("/proc/sys/net/netfilter", k)
			if err := os.WriteFile(p, []byte("1"), 0); err != nil {
				errs = append(errs, fmt.Errorf("enable %s: %w (needs root and the nf_conntrack module)", p, err))
			}
		}
		return errors.Join(errs...)
	})
}

// inNetns runs f on a thread switched into cfg.Netns (files under /proc/sys/net
// belong to the namespace of the thread that opens them).
func (c *Conntrack) inNetns(f func() error) error {
	if c.cfg.Netns == "" {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace change
		ns, err := os.Open(c.cfg.Netns)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- err
			return
		}
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", c.cfg.Netns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func (c *Conntrack) dial() (*conntrack.Conn, error) {
	return dialNetns(c.cfg.Netns, conntrack.Dial)
}

// dialNetns opens a netlink socket with dial, in the network namespace at
// path netns when one is set (the file stays open until the socket is).
func dialNetns[T any](netns string, dial func(*netlink.Config) (T, error)) (T, error) {
	var zero T
	cfg := &netlink.Config{}
	if netns != "" {
		ns, err := os.Open(netns)
		if err != nil {
			return zero, fmt.Errorf("open network namespace: %w", err)
		}
		defer ns.Close()
		cfg.NetNS = int(ns.Fd())
	}
	conn, err := dial(cfg)
	if err != nil {
		return zero, fmt.Errorf("open conntrack netlink socket: %w (needs CAP_NET_ADMIN)", err)
	}
	return conn, nil
}

// Run watches NEW and DESTROY events and dumps the table every DumpInterval
// until ctx ends. An event overrun (ENOBUFS: the kernel dropped events
// because we were slow) is counted, the socket reopened, and the table dumped
// so flows that ended meanwhile are still reported from the dump.
func (c *Conntrack) Run(ctx context.Context, emit func(telemetry.Record) bool) error {
	if err := c.EnableAccounting(); err != nil {
		c.cfg.Log.Warn("conntrack accounting not enabled; byte counts may be zero", "err", err)
	}
	dumpConn, err := c.dialDump()
	if err != nil {
		return err
	}
	defer dumpConn.Close()
	tick := time.NewTicker(c.cfg.DumpInterval)
	defer tick.Stop()
	for {
		conn, err := c.dial()
		if err != nil {
			return err
		}
		_ = conn.SetReadBuffer(c.cfg.ReadBuffer)
		events := make(chan conntrack.Event, 1024)
		errs, err := conn.Listen(events, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTDestroy})
		if err != nil {
			conn.Close()
			return fmt.Errorf("listen for conntrack events: %w", err)
		}
		c.dump(dumpConn, emit)
		lerr := c.listen(ctx, events, errs, tick.C, dumpConn, emit)
		// Close waits for the worker, which may be blocked sending an event.
		closed := make(chan struct{})
		go func() { conn.Close(); close(closed) }()
	drain:
		for {
			select {
			case <-events:
			case <-errs:
			case <-closed:
				break drain
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(lerr, unix.ENOBUFS) {
			return fmt.Errorf("conntrack events: %w", lerr)
		}
		c.overruns.Add(1)
		c.cfg.Log.Warn("conntrack event overrun (ENOBUFS); re-reading the flow table")
	}
}

func (c *Conntrack) listen(ctx context.Context, events <-chan conntrack.Event, errs <-chan error, tick <-chan time.Time, dumpConn *netlink.Conn, emit func(telemetry.Record) bool) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case <-tick:
			c.dump(dumpConn, emit)
		case ev := <-events:
			c.events.Add(1)
			if ev.Flow == nil {
				continue
			}
			switch ev.Type {
			case conntrack.EventNew:
				c.started(ev.Flow)
			case conntrack.EventDestroy:
				c.report(ev.Flow, true, emit)
			}
		}
	}
}

// started records attribution at connection start: the process may be gone
// by the time the flow ends.
func (c *Conntrack) started(f *conntrack.Flow) *flowState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.flows[f.ID]; ok {
		return st
	}
	local, remote := endpoints(f)
	if c.skipped(f, local, remote) {
		return &c.leftOut // counted in Own when it ends (report)
	}
	if len(c.flows) >= c.cfg.MaxFlows {
		c.dropped.Add(1)
		return nil
	}
	// Counted as seen by the current dump: a flow that began after the last
	// whole dump is forgotten only after two whole dumps missed it, like
	// every other (dump).
	st := &flowState{dumped: c.dumpGen}
	if c.cfg.Procs != nil {
		st.proc, _ = c.cfg.Procs.Lookup(f.TupleOrig.Proto.Protocol, local, remote)
		if c.cfg.OwnPID != 0 && st.proc.PID == c.cfg.OwnPID {
			st.skip = true
			c.own.Add(1)
		}
	}
	if c.cfg.Names != nil {
		st.name, _ = c.cfg.Names.Lookup(remote.Addr())
	}
	c.flows[f.ID] = st
	return st
}

// report emits the bytes a flow moved since its last report; final removes
// it. emit reports whether the record was taken: if not (the telemetry
// queue was full), the flow's reported counters stay where they were, so
// the next dump or its DESTROY reports those bytes again instead of losing
// them. It returns false when a record was refused.
func (c *Conntrack) report(f *conntrack.Flow, final bool, emit func(telemetry.Record) bool) bool {
	st := c.started(f)
	if st == nil {
		if !final {
			// Untracked (table full): report once, at DESTROY, with its
			// totals, so dumps cannot count the same bytes again.
			return true
		}
		st = &flowState{}
	}
	if st == &c.leftOut {
		if final {
			c.own.Add(1)
		}
		return true
	}
	if !final {
		st.dumped = c.dumpGen // dump marks what it saw
	}
	// The original direction is the initiator's: for a connection this host
	// opened, orig bytes are sent and reply bytes are received.
	sent, recv := f.CountersOrig.Bytes, f.CountersReply.Bytes
	dSent, dRecv := sub(sent, st.sent), sub(recv, st.received)
	if final {
		c.mu.Lock()
		delete(c.flows, f.ID)
		c.mu.Unlock()
	}
	if st.skip || (!final && dSent == 0 && dRecv == 0) {
		st.sent, st.received = max(sent, st.sent), max(recv, st.received)
		return true
	}
	local, remote := endpoints(f)
	name := st.name
	if c.cfg.ConnNames != nil {
		if n, ok := c.cfg.ConnNames.LookupConn(f.TupleOrig.Proto.Protocol, local, remote); ok {
			name = n
		}
	}
	if name == "" {
		c.unnamed.Add(1)
	}
	r := telemetry.Record{
		Timestamp:                    c.cfg.Now().UTC(),
		ActionType:                   telemetry.ConnectionSuccess,
		RemoteIP:                     remote.Addr().String(),
		RemotePort:                   int(remote.Port()),
		RemoteUrl:                    name,
		LocalIP:                      local.Addr().String(),
		LocalPort:                    int(local.Port()),
		Protocol:                     protoName(f.TupleOrig.Proto.Protocol),
		BytesSent:                    int64(dSent),
		BytesReceived:                int64(dRecv),
		InitiatingProcessId:          st.proc.PID,
		InitiatingProcessFileName:    st.proc.FileName,
		InitiatingProcessAccountName: st.proc.Account,
		Source:                       telemetry.SourceConntrack,
	}
	if !f.Timestamp.Start.IsZero() && final {
		r.Timestamp = f.Timestamp.Start.UTC()
	}
	if !emit(r) {
		// A DESTROY's record refused is lost (counted in the pipeline's
		// gap record); a dump's is reported again with the next dump.
		c.refused.Add(1)
		return false
	}
	c.records.Add(1)
	st.sent, st.received = max(sent, st.sent), max(recv, st.received)
	return true
}

// dump reports byte deltas of every live flow and forgets flows that are no
// longer in the table (their DESTROY event was lost: they are reported with
// what the last dump saw).
//
// The table is read as the kernel sends it, one datagram at a time
// (dumpFlows), never whole: the conntrack table is the whole host's, and
// its local services alone can fill it (a resolver forwarding from a new
// port per query). Read whole (conntrack.Conn.Dump), a table of ~51,000
// flows was ~60 MB live at once — the messages and a 496-byte Flow each —
// every five minutes: the agent's peak RSS in the DNS benchmark (issue 21).
//
// A dump is paced (Config.Pace) between datagrams until a record is refused:
// then the consumer is stuck (a failing disk) or outrun anyway, and waiting
// at each of hundreds of datagrams would stall the event loop into an
// overrun; the refused flows keep their counters for the next dump.
//
// A flow is forgotten only when two whole dumps in a row did not see it: a
// netlink dump can miss entries of a table that changes while it is read,
// and a live flow forgotten once would be reported as new, whole bytes and
// all, by the next dump (counted twice).
func (c *Conntrack) dump(conn *netlink.Conn, emit func(telemetry.Record) bool) {
	c.dumpGen++
	if c.dumpBuf == nil {
		c.dumpBuf = make([]byte, dumpReadSize)
	}
	pace := c.cfg.Pace
	undecoded, err := dumpFlows(conn, c.dumpBuf, func(f *conntrack.Flow) {
		if !c.report(f, false, emit) {
			pace = nil
		}
	}, func() {
		if pace != nil {
			pace()
		}
	})
	if undecoded > 0 {
		// Once per dump (every DumpInterval, or after an overrun): not per
		// message.
		c.undecoded.Add(uint64(undecoded))
		c.cfg.Log.Warn("conntrack dump: messages that did not decode were skipped; their flows are reported at DESTROY", "messages", undecoded)
	}
	if err != nil {
		// What was read is reported; the flows are forgotten only after
		// whole dumps.
		c.cfg.Log.Warn("conntrack dump failed", "err", err)
		return
	}
	c.dumps.Add(1)
	c.forgetUnseen()
}

// forgetUnseen ends a whole dump: it forgets the flows that neither it nor
// the previous whole dump saw.
func (c *Conntrack) forgetUnseen() {
	prev := c.wholeGen
	c.wholeGen = c.dumpGen
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, st := range c.flows {
		// Seen by neither this dump nor any since the previous whole one
		// (a flow started since carries the dump current then).
		if st.dumped != c.dumpGen && st.dumped < prev {
			delete(c.flows, id)
		}
	}
}

// dumpReadSize is the dump's read buffer: a dump datagram is at most 32 KiB
// (the kernel's netlink_dump caps its buffers there).
const dumpReadSize = 32 << 10

// ipctnlMsgCtGet is IPCTNL_MSG_CT_GET (linux/netfilter/nfnetlink_conntrack.h).
const ipctnlMsgCtGet = 1

// dialDump opens the netlink socket the table dumps are read from.
func (c *Conntrack) dialDump() (*netlink.Conn, error) {
	return dialNetns(c.cfg.Netns, func(cfg *netlink.Config) (*netlink.Conn, error) {
		return netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	})
}

// dumpFlows asks the kernel for its conntrack table (IPv4 and IPv6) and
// calls fn with each flow as its datagram is read, and between after each
// datagram; fn must not keep the flow. Only one datagram (buf) is held at a
// time. It returns the count of messages that did not decode.
func dumpFlows(conn *netlink.Conn, buf []byte, fn func(*conntrack.Flow), between func()) (int, error) {
	req, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(ipctnlMsgCtGet),
		Family:      netfilter.ProtoUnspec,
		Flags:       netlink.Request | netlink.Dump,
	}, nil)
	if err != nil {
		return 0, err
	}
	sent, err := conn.Send(req)
	if err != nil {
		return 0, fmt.Errorf("ask for the conntrack table: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	undecoded := 0
	for {
		var n int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			// MSG_TRUNC: n is the datagram's length even past buf.
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
			return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK && rerr != unix.EINTR
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return undecoded, fmt.Errorf("read the conntrack table: %w", err)
		}
		if n > len(buf) {
			return undecoded, fmt.Errorf("read the conntrack table: a %d-byte datagram is more than the %d-byte buffer", n, len(buf))
		}
		done, bad, err := parseDump(buf[:n], sent.Header.Sequence, fn)
		undecoded += bad
		if done || err != nil {
			return undecoded, err
		}
		between()
	}
}

// parseDump reads one datagram of a dump answer (seq is the request's
// sequence number), calling fn with each flow. done reports the dump's end:
// NLMSG_DONE, or NLMSG_ERROR. The kernel ends a dump that failed part way
// (an allocation failure, a table changing under it) with an NLMSG_DONE
// whose payload is the negative errno (netlink_dump_done): that is an
// error, not the end of the table — an incomplete dump must not make the
// flows it missed look gone. undecoded counts flow messages that did not
// decode (skipped, each reported at its DESTROY).
func parseDump(b []byte, seq uint32, fn func(*conntrack.Flow)) (done bool, undecoded int, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return true, 0, fmt.Errorf("read the conntrack table: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue // an answer to an earlier, abandoned dump
		}
		switch m.Header.Type {
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno < 0 {
					return true, undecoded, fmt.Errorf("read the conntrack table: the kernel ended the dump with %w", unix.Errno(-errno))
				}
			}
			return true, undecoded, nil // the end, or an acknowledgement
		}
		if netfilter.SubsystemID(m.Header.Type>>8) != netfilter.NFSubsysCTNetlink {
			continue // an expectation (NFNL_SUBSYS_CTNETLINK_EXP): not a flow
		}
		// A dump's flows carry the request's message type (GET); the
		// library decodes a flow from a NEW message, which is the same
		// attributes: the type is set to NEW (the low byte, 0), the
		// subsystem (the high byte) kept.
		var ev conntrack.Event
		err := ev.Unmarshal(netlink.Message{
			Header: netlink.Header{Length: m.Header.Len, Type: netlink.HeaderType(m.Header.Type &^ 0xff),
				Flags: netlink.HeaderFlags(m.Header.Flags), Sequence: m.Header.Seq, PID: m.Header.Pid},
			Data: m.Data,
		})
		if err != nil || ev.Flow == nil {
			undecoded++
			continue
		}
		fn(ev.Flow)
	}
	return false, undecoded, nil
}

// skipped reports a flow left out before attribution: the agent's own by
// its conntrack mark, or loopback to loopback.
func (c *Conntrack) skipped(f *conntrack.Flow, local, remote netip.AddrPort) bool {
	if c.cfg.OwnMark != 0 && f.Mark == c.cfg.OwnMark {
		return true
	}
	return c.cfg.SkipLoopback && local.Addr().IsLoopback() && remote.Addr().IsLoopback()
}

func endpoints(f *conntrack.Flow) (local, remote netip.AddrPort) {
	t := f.TupleOrig
	return netip.AddrPortFrom(t.IP.SourceAddress.Unmap(), t.Proto.SourcePort),
		netip.AddrPortFrom(t.IP.DestinationAddress.Unmap(), t.Proto.DestinationPort)
}

func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return telemetry.ProtoTCP
	case unix.IPPROTO_UDP:
		return telemetry.ProtoUDP
	}
	return ""
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
