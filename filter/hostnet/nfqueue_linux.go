//go:build linux

package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/inspect"
)

// nfqTableName is the inspector's own table in the ip and ip6 families. It
// is created with NFT_TABLE_F_OWNER (Linux 5.12): the table belongs to the
// netlink socket that created it and the kernel deletes it when that socket
// closes — also when the agent is killed — so a crash leaves no rule.
const nfqTableName = "netward_inspect"

// linux/netfilter/xt_NFQUEUE.h: NFQ_FLAG_BYPASS accepts packets when no
// program listens on the queue, instead of dropping them; NFQ_FLAG_CPU_FANOUT
// picks the queue by the sending CPU (queuenum + cpu % queues_total).
const (
	nfqFlagBypass    = 0x1
	nfqFlagCPUFanout = 0x2
)

// TCP flag bytes (RFC 9293 §3.1).
const (
	nfqFlagsSYN = 0x02
	nfqFlagsACK = 0x10
)

// Inspector feeds the packets of new connections to an inspect.Engine
// through NFQUEUE and marks each flow allowed or blocked by its verdict (see
// docs/inspect.md).
type Inspector struct {
	cfg          InspectorConfig
	eng          *inspect.Engine
	ip           atomic.Pointer[filter.IPVerdicts] // the kernel's IP verdicts (ipblock, ipwarn, ipdecide)
	rulesChanged chan struct{}                     // wakes Run to refill the sets
	ready        chan struct{}                     // closed once the rules are installed

	deadlineMissed, verdicts, verdictErrors atomic.Uint64
}

// NewInspector checks cfg and builds its engine; it starts nothing.
func NewInspector(cfg InspectorConfig) (*Inspector, error) {
	c, eng, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	i := &Inspector{cfg: c, eng: eng, rulesChanged: make(chan struct{}, 1), ready: make(chan struct{})}
	ip := c.IP
	i.ip.Store(&ip)
	return i, nil
}

// SetIP replaces, while running, the kernel's IP verdicts (see
// InspectConfig.IP). The three sets of each family are refilled in one
// nftables transaction: no packet sees a half-updated state. A TCP flow
// already decided keeps its mark, unless its address is now in ipblock.
func (i *Inspector) SetIP(v filter.IPVerdicts) {
	i.ip.Store(&v)
	select {
	case i.rulesChanged <- struct{}{}:
	default:
	}
}

// Ready is closed once Run has bound the queues and installed the rules:
// from then on, new connections are inspected.
func (i *Inspector) Ready() <-chan struct{} { return i.ready }

// Stats returns the inspector's counters.
func (i *Inspector) Stats() InspectorStats {
	return InspectorStats{Stats: i.eng.Stats(), DeadlineMissed: i.deadlineMissed.Load(),
		Verdicts: i.verdicts.Load(), VerdictErrors: i.verdictErrors.Load()}
}

// Run binds the queue, installs the owner tables and gives every queued
// packet a verdict until ctx is done — the engine's, or the default one from
// the watchdog when a decision overruns InspectorConfig.Deadline (see
// inspect.Watchdog) — then stops without dropping a packet:
//
//  1. the queue chains are emptied (the tables and their hooks stay), so no
//     new packet enters the queue;
//  2. the reader answers what is still queued, until the queue has been
//     quiet for nfqDrainQuiet (at most nfqDrainMax);
//  3. the tables are deleted and the queue is unbound.
//
// The order matters: the kernel drops every packet still queued when a hook
// is unregistered (deleting a table or chain) or when the queue's socket
// closes (nfnetlink_queue flushes the instance with NF_DROP). A client would
// then wait for a retransmission — a SYN waits a whole second.
func (i *Inspector) Run(ctx context.Context) error {
	c := &i.cfg
	var (
		mu   sync.Mutex   // one engine (flow table) for all queues
		busy atomic.Int32 // callbacks running
		last atomic.Int64 // when the last callback ended (UnixNano)
	)
	decide := func(payload []byte) uint32 {
		mu.Lock()
		defer mu.Unlock()
		return markOf(i.eng.Decide(payload))
	}

	// last is monotonic: nanoseconds since base.
	base := time.Now()
	mono := func() int64 { return int64(time.Since(base)) }

	qctx, cancelQueue := context.WithCancel(context.Background())
	var watchers sync.WaitGroup
	var queues []*nfqSock
	closeQueues := func() {
		cancelQueue()
		watchers.Wait()
		// A reader returns within nfqRecvTimeout, unless a decision is stuck
		// (the watchdog has answered for its packet): then the queue is
		// unbound without it, and the reader closes the socket when it
		// comes back (nfqSock.close), so stopping never hangs.
		wait := time.NewTimer(c.Deadline + nfqRecvTimeout + 500*time.Millisecond)
		defer wait.Stop()
		for _, q := range queues {
			select {
			case <-q.readerDone:
			case <-wait.C:
				c.Log.Error("inspect: a queue reader is stuck in a decision; unbinding its queue without it", "queue", q.queue)
			}
			_ = q.close()
		}
	}
	for n := 0; n < c.Queues; n++ {
		q, err := i.openQueue(qctx, c.QueueNum+uint16(n), decide, &busy, &last, mono, &watchers)
		if err != nil {
			closeQueues()
			return err
		}
		queues = append(queues, q)
	}
	i.startRefusedLog(qctx, &watchers)

	nft, err := nftables.New(nftables.AsLasting())
	if err != nil {
		closeQueues()
		return fmt.Errorf("inspect: open nftables netlink: %w", err)
	}
	tables, queueChains, sets, err := i.installRules(nft)
	if err != nil {
		_ = nft.CloseLasting()
		closeQueues()
		return err
	}
	close(i.ready)
	ip := i.ip.Load()
	c.Log.Info("inspect: inline inspection on", "queue", c.QueueNum, "queues", c.Queues, "quic", c.Engine.QUIC,
		"ipBlockRanges", ip.Block.Len(), "ipWarnRanges", ip.Warn.Len(), "ipInspectRanges", ip.Inspect.Len(),
		"skipMark", fmt.Sprintf("%#x/%#x", c.SkipMark, c.SkipMask))

	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-i.rulesChanged:
			// One transaction: the sets' contents are replaced atomically;
			// the chains and hooks stay, so no queued packet is lost.
			ip := i.ip.Load()
			for _, ts := range sets {
				for _, s := range ts.fill(ip) {
					nft.FlushSet(s.set)
					if len(s.elems) > 0 {
						if err := nft.SetAddElements(s.set, s.elems); err != nil {
							c.Log.Warn("inspect: could not encode the IP rules for the kernel", "set", s.set.Name, "err", err)
						}
					}
				}
			}
			if err := nft.Flush(); err != nil {
				c.Log.Warn("inspect: could not change the kernel's IP verdict sets; the previous ones stay, retrying in 5 s", "err", err)
				time.AfterFunc(nfqSetRetry, func() {
					select {
					case i.rulesChanged <- struct{}{}:
					default:
					}
				})
			} else {
				c.Log.Info("inspect: kernel IP verdicts changed", "blockRanges", ip.Block.Len(), "warnRanges", ip.Warn.Len(), "inspectRanges", ip.Inspect.Len())
			}
		}
	}
	for _, ch := range queueChains {
		nft.FlushChain(ch)
	}
	if err := nft.Flush(); err != nil {
		c.Log.Warn("inspect: could not empty the queue chains before stopping; packets still queued may be dropped", "err", err)
	}
	last.Store(mono())
	for t0 := time.Now(); time.Since(t0) < nfqDrainMax; time.Sleep(5 * time.Millisecond) {
		if busy.Load() == 0 && time.Duration(mono()-last.Load()) >= nfqDrainQuiet {
			break
		}
	}
	for _, t := range tables {
		nft.DelTable(t)
	}
	if err := nft.Flush(); err != nil {
		// Closing the socket below removes the owner tables anyway.
		c.Log.Debug("inspect: delete tables", "err", err)
	}
	_ = nft.CloseLasting()
	closeQueues()
	c.Log.Info("inspect: inline inspection off", "stats", fmt.Sprintf("%+v", i.Stats()))
	return nil
}

// startRefusedLog reads the NFLOG group of the rules that refuse by IP
// verdict in the kernel, and hands each logged packet to the engine
// (Engine.KernelRefused: an event decided again by address, for the
// indicator that refused it), so the refusal is recorded and the user told. Without
// nfnetlink_log the refusals still happen, unrecorded (logged once). The
// reader stops with qctx; watchers waits for it.
func (i *Inspector) startRefusedLog(qctx context.Context, watchers *sync.WaitGroup) {
	c := &i.cfg
	s, err := openNFLogSock(c.LogGroup)
	if err != nil {
		c.Log.Warn("inspect: cannot read the NFLOG group of IP refusals; they are enforced but not recorded", "group", c.LogGroup, "err", err)
		return
	}
	watchers.Add(1)
	go func() {
		defer watchers.Done()
		defer s.close()
		buf := make([]byte, 64<<10)
		for qctx.Err() == nil {
			err := s.read(buf, func(p []byte) {
				if f, ok := parseRefused(p); ok {
					i.eng.KernelRefused(f.proto, f.local, f.remote)
				}
			})
			if err != nil && err != unix.EAGAIN && err != unix.EINTR && err != unix.ENOBUFS {
				time.Sleep(10 * time.Millisecond) // never spin on a broken socket
			}
		}
	}()
}

// openQueue binds NFQUEUE num and starts its reader (on a thread of its
// own, see nfqSock) and its deadline watchdog, both tracked by watchers;
// both stop when qctx ends. Every queue shares the engine through decide:
// the kernel spreads packets over the queues by CPU (NFQ_FLAG_CPU_FANOUT),
// so one flow's packets may arrive on different queues, and the
// reinjection of accepted packets — the bulk of a verdict's cost — runs in
// parallel outside the engine's lock.
func (i *Inspector) openQueue(qctx context.Context, num uint16, decide func([]byte) uint32,
	busy *atomic.Int32, last *atomic.Int64, mono func() int64, watchers *sync.WaitGroup) (*nfqSock, error) {
	c := &i.cfg
	watch := inspect.NewWatchdog(c.Deadline)
	q, err := openNFQSock(num, nfqMaxQueueLen)
	if err != nil {
		return nil, fmt.Errorf("inspect: bind NFQUEUE %d (needs root/CAP_NET_ADMIN and the nfnetlink_queue module; is another program using the queue?): %w", num, err)
	}
	answer := func(p nfqPacket) {
		busy.Add(1)
		defer func() { last.Store(mono()); busy.Add(-1) }()
		watch.Begin(p.id)
		mark := decide(p.payload)
		if watch.End() {
			return // the watchdog gave this packet the default verdict
		}
		var verr error
		for try := 0; try < 2; try++ { // one retry: a lost verdict leaves the packet queued until shutdown
			if verr = q.verdict(p.id, mark); verr == nil {
				break
			}
		}
		if verr != nil {
			i.verdictErrors.Add(1)
			c.Log.Warn("inspect: verdict failed twice; the packet waits in the queue until the inspector stops", "err", verr)
		} else {
			i.verdicts.Add(1)
		}
	}
	watchers.Add(1)
	q.startReader()
	go func() {
		defer q.readerExit()
		// The thread sleeps in recvmsg; locking it keeps the goroutine on
		// it, so a queued packet wakes exactly this thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]byte, 0xffff+4096)
		var failures int
		var lastWarn time.Time
		for qctx.Err() == nil {
			err := q.read(buf, answer)
			if err == nil || err == unix.EAGAIN || err == unix.EINTR || err == unix.ENOBUFS {
				continue
			}
			// Never spin on a broken socket, and say so: meanwhile the
			// kernel accepts the queue's packets uninspected (fail-open).
			failures++
			if time.Since(lastWarn) >= 10*time.Second {
				c.Log.Error("inspect: cannot read the queue; its packets pass uninspected until it recovers", "queue", num, "err", err, "failures", failures)
				lastWarn = time.Now()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	go func() {
		defer watchers.Done()
		watch.Run(qctx, func(id uint32) {
			// The documented default: accept unmarked (the flow is looked at
			// again on its next packet); with failClosed, the block mark.
			i.deadlineMissed.Add(1)
			var mark uint32
			if c.Engine.FailClosed {
				mark = InspectMarkBlock
			}
			if err := q.verdict(id, mark); err != nil {
				i.verdictErrors.Add(1)
			}
			c.Log.Warn("inspect: a packet decision overran its deadline; default verdict given", "deadline", c.Deadline, "failClosed", c.Engine.FailClosed)
		})
	}()
	return q, nil
}

const (
	// nfqMaxQueueLen bounds the packets waiting for a verdict; past it the
	// kernel accepts (fail-open flag).
	nfqMaxQueueLen = 4096
	// nfqDrainQuiet / nfqDrainMax: at shutdown the queue counts as drained
	// after this long without a packet, and the wait is bounded.
	nfqDrainQuiet = 50 * time.Millisecond
	nfqDrainMax   = 2 * time.Second
	// nfqSetRetry is how soon a failed update of the IP-rule sets is tried
	// again (the policy may not change for hours).
	nfqSetRetry = 5 * time.Second
	// nflogRate bounds the refused packets copied to the agent per second
	// per rule (and its burst): enough to record every connection a person
	// makes, never a flood the agent must keep up with.
	nflogRate = 50
)

// installRules creates the owner tables (ip and ip6) on the lasting conn.
//
// Chain "queue" (output, priority filter):
//
//	oifname "lo" accept
//	meta mark & SkipMask == SkipMark accept          (the agent's own traffic)
//	ip daddr @ipblock meta l4proto tcp reject with tcp reset   (IP Block: every protocol,
//	ip daddr @ipblock drop                                      in the kernel, no queue trip)
//	ip daddr @ipwarn meta l4proto != tcp drop        (IP Warn without a bypass: TCP goes on
//	                                                  to the queue, the rest is dropped)
//	ct mark InspectMarkAllow accept                   (decided flows bypass userspace)
//	ct mark InspectMarkBlock meta l4proto tcp reject with tcp reset
//	ct mark InspectMarkBlock drop
//	bare ACK (no payload) accept                      (see nfqBareSegment)
//	meta l4proto tcp ip daddr @ipdecide NFQUEUE num Q bypass      (xt target; IP rules from the SYN)
//	bare SYN (no payload) accept
//	meta l4proto tcp tcp dport {NamePorts} NFQUEUE num Q bypass
//	meta l4proto tcp tcp dport {ProxyPorts} NFQUEUE num Q bypass
//	meta l4proto udp udp dport 443 NFQUEUE num Q bypass             (unless quic allow)
//
// Chain "verdict" (output, priority filter+10) acts on the mark the verdict set:
//
//	meta mark InspectMarkAllow ct mark set meta mark accept
//	meta mark InspectMarkBlock ct mark set meta mark, tcp: reject with tcp reset, else drop
//
// This kernel has no native nft "queue" expression (nft_queue), so queueing
// uses the iptables NFQUEUE target through nft_compat, which works wherever
// iptables-nft does; xt targets need the ip/ip6 families, not inet.
//
// Everything goes in one batch, so the kernel applies all of it or none: a
// leftover table of the same name (created without the owner flag by an
// older version or by hand — an owner table cannot outlive its agent) is
// deleted in that batch, and only in the families where it exists, because
// deleting a missing table would fail the whole batch.
func (i *Inspector) installRules(nft *nftables.Conn) (tables []*nftables.Table, queueChains []*nftables.Chain, sets []ipSets, err error) {
	c := &i.cfg
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		old, err := nft.ListTablesOfFamily(fam)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("inspect: list nftables tables (needs root/CAP_NET_ADMIN): %w", err)
		}
		for _, t := range old {
			if t.Name == nfqTableName {
				c.Log.Info("inspect: removing a leftover table", "family", fam, "table", t.Name, "owned", t.Flags&nftables.TableFlagOwner != 0)
				nft.DelTable(t)
			}
		}
	}
	ip := i.ip.Load()
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		t := nft.AddTable(&nftables.Table{Name: nfqTableName, Family: fam, Flags: nftables.TableFlagOwner})
		newSet := func(name string) *nftables.Set {
			set := &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIPAddr, Interval: true}
			if fam == nftables.TableFamilyIPv6 {
				set.KeyType = nftables.TypeIP6Addr
			}
			return set
		}
		ts := ipSets{block: newSet(nfqBlockSetName), warn: newSet(nfqWarnSetName), decide: newSet(nfqIPSetName)}
		for _, f := range ts.fill(ip) {
			if err := nft.AddSet(f.set, f.elems); err != nil {
				return nil, nil, nil, fmt.Errorf("inspect: nftables set %s: %w", f.set.Name, err)
			}
		}
		qc := nft.AddChain(&nftables.Chain{Name: "queue", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
		tables, queueChains, sets = append(tables, t), append(queueChains, qc), append(sets, ts)
		vc := nft.AddChain(&nftables.Chain{Name: "verdict", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRef(10)})
		add := func(ch *nftables.Chain, e ...expr.Any) { nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e}) }
		accept := &expr.Verdict{Kind: expr.VerdictAccept}
		drop := &expr.Verdict{Kind: expr.VerdictDrop}
		reset := &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
		tcp := nfqL4(unix.IPPROTO_TCP)

		i.addQueueRules(nft, t, qc, ts)
		for _, m := range []uint32{InspectMarkAllow, InspectMarkBlock} {
			setCt := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(m)},
				&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
			}
			if m == InspectMarkAllow {
				add(vc, append(setCt, accept)...)
				continue
			}
			add(vc, append(append(setCt, tcp...), reset)...)
			add(vc, append(setCt, drop)...)
		}
	}
	if err := nft.Flush(); err != nil {
		switch {
		case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY):
			return nil, nil, nil, fmt.Errorf("inspect: install nftables rules: table %q is owned by another running process (a second netward agent?); stop it or set sni.enabled to false: %w", nfqTableName, err)
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
			return nil, nil, nil, fmt.Errorf("inspect: install nftables rules: the kernel lacks nft_compat/xt_NFQUEUE or owner tables (Linux ≥ 5.12 with CONFIG_NETFILTER_XT_TARGET_NFQUEUE); set sni.enabled to false: %w", err)
		}
		return nil, nil, nil, fmt.Errorf("inspect: install nftables rules: %w", err)
	}
	return tables, queueChains, sets, nil
}

// The interval sets of each table, filled from filter.IPVerdicts:
//
//   - ipblock: addresses refused on every protocol (IP Block), in the kernel;
//   - ipwarn: addresses whose non-TCP traffic is dropped (IP Warn without a
//     bypass; its TCP goes to the queue through ipdecide);
//   - ipdecide: addresses whose TCP flows are queued from the SYN on every
//     port for a decision or a record (Warn, bypassed Warn, Audit, and in
//     audit/off mode the would-be Blocks).
const (
	nfqBlockSetName = "ipblock"
	nfqWarnSetName  = "ipwarn"
	nfqIPSetName    = "ipdecide"
)

// ipSets are one table's IP verdict sets.
type ipSets struct{ block, warn, decide *nftables.Set }

// setFill is a set and the elements it must hold.
type setFill struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// fill pairs each of ts's sets with its elements from ip.
func (ts ipSets) fill(ip *filter.IPVerdicts) []setFill {
	fam := ts.block.Table.Family
	return []setFill{
		{ts.block, ipSetElements(fam, ip.Block)},
		{ts.warn, ipSetElements(fam, ip.Warn)},
		{ts.decide, ipSetElements(fam, ip.Inspect)},
	}
}

// ipSetElements encodes the ranges of the table family fam (v4 or v6) as
// interval-set elements: each range's first address, and the address after
// its last flagged as the interval's end (none when the range runs to the
// top of the address space).
func ipSetElements(fam nftables.TableFamily, rs filter.FamilyRanges) []nftables.SetElement {
	ranges := rs.V4
	if fam == nftables.TableFamilyIPv6 {
		ranges = rs.V6
	}
	var out []nftables.SetElement
	for _, r := range ranges {
		out = append(out, nftables.SetElement{Key: r.First.AsSlice()})
		if end := r.Last.Next(); end.IsValid() {
			out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// nfqBareSegment matches a TCP segment whose flags are exactly flags and
// that carries no payload, for one TCP header length (doff 32-bit words). nftables cannot add two
// header fields, so the lengths are matched exactly: IPv4 without options
// (first byte 0x45) whose total length is 20+4·doff, or IPv6 whose next
// header is TCP and whose payload length is 4·doff. Anything else — IP
// options, IPv6 extension headers, other TCP option sizes — does not match
// and is queued as before, so nothing with payload can slip past.
func nfqBareSegment(fam nftables.TableFamily, doff, flags uint8) []expr.Any {
	net := func(off, n uint32, want []byte) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: want},
		}
	}
	e := nfqL4(unix.IPPROTO_TCP)
	if fam == nftables.TableFamilyIPv4 {
		e = append(e, net(0, 1, []byte{0x45})...)
		e = append(e, net(2, 2, binaryutil.BigEndian.PutUint16(20+4*uint16(doff)))...)
	} else {
		e = append(e, net(6, 1, []byte{unix.IPPROTO_TCP})...)
		e = append(e, net(4, 2, binaryutil.BigEndian.PutUint16(4*uint16(doff)))...)
	}
	return append(e,
		// data offset: the high nibble of TCP byte 12
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 12, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xf0}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{doff << 4}},
		// flags, all eight of byte 13 (CWR and ECE included)
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{flags}},
	)
}

// addQueueRules adds the rules of chain "queue" (see installRules) to qc.
func (i *Inspector) addQueueRules(nft *nftables.Conn, t *nftables.Table, qc *nftables.Chain, ts ipSets) {
	c := &i.cfg
	add := func(e ...expr.Any) { nft.AddRule(&nftables.Rule{Table: t, Chain: qc, Exprs: e}) }
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	tcp := nfqL4(unix.IPPROTO_TCP)
	udp := nfqL4(unix.IPPROTO_UDP)
	target := nfqTarget(c.QueueNum, uint16(c.Queues))

	add(&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nfqIfname("lo")}, accept)
	if c.SkipMask != 0 {
		add(&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(c.SkipMask), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(c.SkipMark & c.SkipMask)}, accept)
	}
	daddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	if t.Family == nftables.TableFamilyIPv6 {
		daddr.Offset, daddr.Len = 24, 16
	}
	in := func(set *nftables.Set) []expr.Any {
		return []expr.Any{daddr, &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID}}
	}
	// The first packet of each refused connection is copied to the
	// agent's NFLOG group (headers only, at most nflogRate a second) so
	// it is recorded; the verdict does not wait for it.
	logNew := func(match ...expr.Any) {
		add(append(match,
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			&expr.Limit{Type: expr.LimitTypePkts, Rate: nflogRate, Unit: expr.LimitTimeSecond, Burst: nflogRate},
			&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN, Group: c.LogGroup, Snaplen: nflogSnaplen})...)
	}
	notTCP := []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.IPPROTO_TCP}}}
	logNew(in(ts.block)...)
	logNew(append(in(ts.warn), notTCP...)...)
	// IP Block: every protocol refused in the kernel, before the conntrack
	// marks (a flow decided earlier is cut when its address becomes
	// blocked); TCP gets a reset so the client fails at once. Counted.
	add(append(append(in(ts.block), tcp...), &expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})...)
	add(append(in(ts.block), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})...)
	// IP Warn without a bypass: TCP goes on to the queue below (the
	// inspector decides it per user and tells the user); anything else is
	// dropped until a bypass takes the address out of the set.
	add(append(append(in(ts.warn), notTCP...), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})...)
	add(append(nfqCtMark(InspectMarkAllow), accept)...)
	add(append(append(nfqCtMark(InspectMarkBlock), tcp...), &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})...)
	add(append(nfqCtMark(InspectMarkBlock), &expr.Verdict{Kind: expr.VerdictDrop})...)
	// A bare ACK (the third packet of the handshake) carries nothing to
	// decide on; sparing it the trip to userspace saves one of the three
	// queued packets of a connection. See nfqBareSegment.
	for _, doff := range []uint8{5, 8} { // no options; timestamps (RFC 7323)
		add(append(nfqBareSegment(t.Family, doff, nfqFlagsACK), accept)...)
	}
	// A flow to an address an IP rule may refuse is queued from its SYN, on
	// every port: the rule applies before any byte is sent. The set is
	// looked up in the kernel, so every other flow stays out of userspace
	// until its first data segment on a name port.
	add(append(append(tcp, in(ts.decide)...), target)...)
	// Any other SYN without data has nothing to be decided by: the name
	// ports are read from their first data segment, whose sequence number
	// starts the stream. A SYN with data (TCP Fast Open), with ECN flags or
	// with unusual options does not match and is queued as before.
	for _, doff := range []uint8{10, 8, 11, 5} { // SYN options of 20, 12, 24 and 0 bytes
		add(append(nfqBareSegment(t.Family, doff, nfqFlagsSYN), accept)...)
	}
	for _, p := range c.Engine.NamePorts {
		add(append(append(tcp, nfqDport(p)...), target)...)
	}
	// Forward proxy ports: the CONNECT target and the tunnel's ClientHello.
	for _, p := range c.Engine.ProxyPorts {
		add(append(append(tcp, nfqDport(p)...), target)...)
	}
	if c.Engine.QUIC != inspect.QUICAllow {
		add(append(append(udp, nfqDport(443)...), target)...)
	}
}

func nfqL4(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

func nfqDport(p uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p)},
	}
}

func nfqCtMark(m uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(m)},
	}
}

func nfqIfname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

// nfqTarget is the xt NFQUEUE target, revision 3, with its xt_NFQ_info_v3
// encoded by hand (host byte order): queuenum u16, queues_total u16, flags u16.
func nfqTarget(queue, total uint16) *expr.Target {
	info := make([]byte, 6)
	flags := uint16(nfqFlagBypass)
	if total > 1 {
		flags |= nfqFlagCPUFanout
	}
	binary.NativeEndian.PutUint16(info[0:], queue)
	binary.NativeEndian.PutUint16(info[2:], total)
	binary.NativeEndian.PutUint16(info[4:], flags)
	u := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &u}
}
