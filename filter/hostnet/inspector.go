package hostnet

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/filter/inspect"
	"github.com/netward/netward/internal/guard"
)

// Packet marks the inspector puts on a verdict (inspect.Allow,
// inspect.Refuse). A rule copies them to the conntrack mark, so the rest of
// a decided flow never reaches userspace.
const (
	InspectMarkAllow uint32 = 0x6e770001 // "nw" 1
	InspectMarkBlock uint32 = 0x6e770002 // "nw" 2: TCP reset, UDP drop
)

// markOf is the packet mark of a verdict (0: accepted, not decided yet).
func markOf(v inspect.Verdict) uint32 {
	switch v {
	case inspect.Allow:
		return InspectMarkAllow
	case inspect.Refuse:
		return InspectMarkBlock
	}
	return 0
}

// InspectorConfig configures the inline inspector (NFQUEUE on Linux): the
// engine that decides (package inspect) and the kernel side that feeds it.
type InspectorConfig struct {
	// Engine decides the flows; its NamePorts and QUIC mode also shape the
	// queue rules, and its FailClosed the default verdict of a decision
	// that overruns Deadline.
	Engine inspect.Config
	// QueueNum is the first NFQUEUE number (default 15353); Queues the
	// number of queues QueueNum.. (default 1), spread by sending CPU. More
	// queues let verdicts (and the kernel work of reinjecting the packet)
	// run in parallel; on the 2-CPU reference machine 2 queues measured no
	// better than 1, so one is the default.
	QueueNum uint16
	Queues   int
	// LogGroup is the NFLOG group the kernel copies the first packet of
	// each connection it refuses by IP verdict to, so it is recorded
	// (default QueueNum; log groups and queues are separate numbers).
	LogGroup uint16
	// IP is what the kernel does with traffic to the addresses of the
	// policy's IpAddress indicators (filter.DecisionPoint.IPVerdicts): Block
	// ranges are refused on every protocol without a trip to userspace,
	// Warn ranges drop everything but TCP, and TCP flows to Inspect ranges
	// are queued from their SYN on every port, so the rule applies before
	// any byte is sent. Other flows reach userspace only with their first
	// data segment on a name port (where IP rules are applied too). Kept in
	// nftables interval sets; change it while running with Inspector.SetIP.
	IP filter.IPVerdicts
	// SkipMark/SkipMask identify the agent's own packets (mark&mask == mark),
	// which are never queued. Zero mask: nothing skipped.
	SkipMark, SkipMask uint32
	// Deadline bounds how long one packet may wait for a decision (default
	// 200 ms); past it the packet is accepted unmarked (counted).
	Deadline time.Duration
	Log      *slog.Logger
}

// DefaultInspectDeadline bounds one packet's decision (InspectorConfig.Deadline).
const DefaultInspectDeadline = 200 * time.Millisecond

// InspectorStats are the inspector's counters: the engine's, and the
// queue's.
type InspectorStats struct {
	inspect.Stats
	// DeadlineMissed counts packets given the default verdict because
	// their decision overran the deadline.
	DeadlineMissed uint64
	// Verdicts counts verdicts given; VerdictErrors those the kernel
	// refused twice (the packet waits in the queue until the inspector
	// stops).
	Verdicts, VerdictErrors uint64
}

// withDefaults checks c and fills in the defaults; the engine is built from
// it.
func (c InspectorConfig) withDefaults() (InspectorConfig, *inspect.Engine, error) {
	if c.QueueNum == 0 {
		c.QueueNum = 15353
	}
	if c.Queues <= 0 {
		c.Queues = 1
	}
	if c.LogGroup == 0 {
		c.LogGroup = c.QueueNum
	}
	if int(c.QueueNum)+c.Queues > 1<<16 {
		return c, nil, fmt.Errorf("inspect: queues %d..%d exceed the NFQUEUE number range", c.QueueNum, int(c.QueueNum)+c.Queues-1)
	}
	if c.Deadline <= 0 {
		c.Deadline = DefaultInspectDeadline
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Engine.Panics == nil {
		c.Engine.Panics = guard.New(c.Log)
	}
	eng, err := inspect.NewEngine(c.Engine)
	if err != nil {
		return c, nil, err
	}
	c.Engine = eng.Config()
	return c, eng, nil
}
