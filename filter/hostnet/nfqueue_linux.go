//go:build linux

package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netward/netward/filter"
)

// nfqTableName is the inspector's own table in the ip and ip6 families. It
// is created with NFT_TABLE_F_OWNER (Linux 5.12): the table belongs to the
// netlink socket that created it and the kernel deletes it when that socket
// closes — also when the agent is killed — so a crash leaves no rule.
const nfqTableName = "netward_inspect"

// NFQ_FLAG_BYPASS (linux/netfilter/xt_NFQUEUE.h): accept packets when no
// program listens on the queue, instead of dropping them.
const nfqFlagBypass = 0x1

// Inspector reads server names from new connections through NFQUEUE and
// marks each flow allowed or blocked (see docs/inspect.md).
type Inspector struct {
	cfg   InspectConfig
	stats inspCounters
}

// NewInspector checks cfg; it starts nothing.
func NewInspector(cfg InspectConfig) (*Inspector, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Inspector{cfg: c}, nil
}

// Stats returns the inspector's counters.
func (i *Inspector) Stats() InspectStats { return i.stats.snapshot() }

// Run binds the queue, installs the owner tables and gives every queued
// packet a verdict until ctx is done. On return the tables are gone and the
// queue is unbound; packets still queued then are accepted by the kernel
// (fail-open queue flag and the target's bypass flag).
func (i *Inspector) Run(ctx context.Context) error {
	c := &i.cfg
	dec := &nfqDeadlineDecider{next: c.Decider, deadline: c.Deadline, failClosed: c.FailClosed, missed: &i.stats.deadlineMissed}
	cc := *c
	cc.Decider = dec
	eng := cc.engine(&i.stats)

	q, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      c.QueueNum,
		MaxPacketLen: 0xffff,
		MaxQueueLen:  4096,
		Copymode:     nfqueue.NfQnlCopyPacket,
		// Fail open: when the queue is full the kernel accepts instead of dropping.
		Flags:        nfqueue.NfQaCfgFlagFailOpen,
		WriteTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		return fmt.Errorf("inspect: open NFQUEUE %d (needs root/CAP_NET_ADMIN and the nfnetlink_queue module): %w", c.QueueNum, err)
	}
	// ENOBUFS on a busy queue must not end the reader.
	_ = q.SetOption(netlink.NoENOBUFS, true)

	qctx, cancelQueue := context.WithCancel(context.Background())
	var mu sync.Mutex // the engine is single-threaded; the callback goroutine is its owner
	hook := func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			return 0
		}
		var payload []byte
		if a.Payload != nil {
			payload = *a.Payload
		}
		mu.Lock()
		mark := eng.packet(payload)
		mu.Unlock()
		var verr error
		if mark != 0 {
			verr = q.SetVerdictWithMark(*a.PacketID, nfqueue.NfAccept, int(mark))
		} else {
			verr = q.SetVerdict(*a.PacketID, nfqueue.NfAccept)
		}
		if verr != nil {
			c.Log.Warn("inspect: verdict failed; the kernel accepts the packet on queue timeout", "err", verr)
		} else {
			i.stats.verdicts.Add(1)
		}
		return 0
	}
	errfn := func(e error) int {
		if qctx.Err() != nil {
			return 1
		}
		c.Log.Debug("inspect: queue read error", "err", e)
		return 0
	}
	if err := q.RegisterWithErrorFunc(qctx, hook, errfn); err != nil {
		cancelQueue()
		_ = q.Close()
		return fmt.Errorf("inspect: bind NFQUEUE %d (is another program using it?): %w", c.QueueNum, err)
	}

	nft, err := nftables.New(nftables.AsLasting())
	if err != nil {
		cancelQueue()
		_ = q.Close()
		return fmt.Errorf("inspect: open nftables netlink: %w", err)
	}
	if err := i.installRules(nft); err != nil {
		_ = nft.CloseLasting()
		cancelQueue()
		_ = q.Close()
		return err
	}
	c.Log.Info("inspect: inline inspection on", "queue", c.QueueNum, "quic", c.QUIC, "allTCPPorts", c.AllTCPPorts)

	<-ctx.Done()
	// Order matters so every queued packet gets a verdict: first remove the
	// rules (no new packets enter the queue), then let the reader answer what
	// is still queued, then unbind.
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		nft.DelTable(&nftables.Table{Name: nfqTableName, Family: fam})
	}
	_ = nft.Flush()
	_ = nft.CloseLasting()
	time.Sleep(50 * time.Millisecond)
	cancelQueue()
	_ = q.Close()
	return nil
}

// installRules creates the owner tables (ip and ip6) on the lasting conn.
//
// Chain "queue" (output, priority filter):
//
//	oifname "lo" accept
//	meta mark & SkipMask == SkipMark accept          (the agent's own traffic)
//	ct mark InspectMarkAllow accept                   (decided flows bypass userspace)
//	ct mark InspectMarkBlock meta l4proto tcp reject with tcp reset
//	ct mark InspectMarkBlock drop
//	meta l4proto tcp [tcp dport {NamePorts}] NFQUEUE num Q bypass   (xt target)
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
func (i *Inspector) installRules(nft *nftables.Conn) error {
	c := &i.cfg
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		// A leftover table would clash; owner tables cannot outlive their
		// agent, so only a table another program holds can be here. Each
		// delete is its own batch: a missing table fails only that batch.
		nft.DelTable(&nftables.Table{Name: nfqTableName, Family: fam})
		_ = nft.Flush()
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		t := nft.AddTable(&nftables.Table{Name: nfqTableName, Family: fam, Flags: nftables.TableFlagOwner})
		qc := nft.AddChain(&nftables.Chain{Name: "queue", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
		vc := nft.AddChain(&nftables.Chain{Name: "verdict", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRef(10)})
		add := func(ch *nftables.Chain, e ...expr.Any) { nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e}) }
		accept := &expr.Verdict{Kind: expr.VerdictAccept}
		drop := &expr.Verdict{Kind: expr.VerdictDrop}
		reset := &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
		tcp := nfqL4(unix.IPPROTO_TCP)
		udp := nfqL4(unix.IPPROTO_UDP)

		add(qc, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nfqIfname("lo")}, accept)
		if c.SkipMask != 0 {
			add(qc, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(c.SkipMask), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(c.SkipMark & c.SkipMask)}, accept)
		}
		add(qc, append(nfqCtMark(InspectMarkAllow), accept)...)
		add(qc, append(append(nfqCtMark(InspectMarkBlock), tcp...), reset)...)
		add(qc, append(nfqCtMark(InspectMarkBlock), drop)...)
		if c.AllTCPPorts {
			add(qc, append(tcp, nfqTarget(c.QueueNum))...)
		} else {
			for _, p := range c.NamePorts {
				add(qc, append(append(tcp, nfqDport(p)...), nfqTarget(c.QueueNum))...)
			}
		}
		if c.QUIC != QUICAllow {
			add(qc, append(append(udp, nfqDport(443)...), nfqTarget(c.QueueNum))...)
		}

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
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("inspect: install nftables rules: the kernel lacks nft_compat/xt_NFQUEUE or owner tables (Linux ≥ 5.12 with CONFIG_NETFILTER_XT_TARGET_NFQUEUE); set sni.enabled to false: %w", err)
		}
		return fmt.Errorf("inspect: install nftables rules: %w", err)
	}
	return nil
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
func nfqTarget(queue uint16) *expr.Target {
	info := make([]byte, 6)
	binary.NativeEndian.PutUint16(info[0:], queue)
	binary.NativeEndian.PutUint16(info[2:], 1)
	binary.NativeEndian.PutUint16(info[4:], nfqFlagBypass)
	u := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &u}
}

// nfqDeadlineDecider bounds each decision: past the deadline the packet gets
// the documented default (allow; block with failClosed) and is counted.
type nfqDeadlineDecider struct {
	next       InspectDecider
	deadline   time.Duration
	failClosed bool
	missed     interface{ Add(uint64) uint64 }
}

func (d *nfqDeadlineDecider) within(f func() filter.Decision) filter.Decision {
	ch := make(chan filter.Decision, 1)
	go func() { ch <- f() }()
	t := time.NewTimer(d.deadline)
	defer t.Stop()
	select {
	case r := <-ch:
		return r
	case <-t.C:
		d.missed.Add(1)
		if d.failClosed {
			return filter.Decision{Verdict: filter.VerdictBlock, Would: filter.VerdictBlock}
		}
		return filter.Decision{}
	}
}

func (d *nfqDeadlineDecider) DecideName(n string) filter.Decision {
	return d.within(func() filter.Decision { return d.next.DecideName(n) })
}
func (d *nfqDeadlineDecider) DecideAddr(a netip.Addr) filter.Decision {
	return d.within(func() filter.Decision { return d.next.DecideAddr(a) })
}
func (d *nfqDeadlineDecider) DecideURL(h, p string) filter.Decision {
	return d.within(func() filter.Decision { return d.next.DecideURL(h, p) })
}
