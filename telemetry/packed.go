package telemetry

import "time"

// Packed is a Record in half its memory, for where records wait in bulk:
// the pipeline's queue, the batch its writer took and the drained records
// carried to the next chunk, and the `netward events` ring. A Record is
// ~480 bytes whatever it holds, and a transaction's record (DNS, flow)
// leaves most of it empty: the gap, indicator-set and machine fields are
// set only on their own rare records, and ActionType, Protocol and Source
// are one of a few constants. Under a DNS flood the queue at its bound,
// the writer's batch, the window drained at a chunk close and the ring
// were ~10 MB of the agent's live heap, which the collector's pacing then
// doubles (issue 21, docs/dns.md "Tenth part").
//
// A transaction's fields are kept inline and the constants as a byte; any
// other record (a field outside those, a value outside the constants or
// the ranges) is kept whole behind ext. Pack then Record gives back the
// same record, field for field (TestPackedRoundTrip), so what is encoded
// and shown is unchanged.
type Packed struct {
	ts                                 time.Time
	deviceID, deviceName               string
	remoteIP, remoteURL, localIP       string
	file, account                      string
	indicatorID, application, resolver string
	bytesSent, bytesReceived, repeat   int64
	pid                                int32
	remotePort, localPort              uint16
	action, protocol, source           uint8 // indexes into the tables below
	ext                                *Record
}

// The values a Packed keeps as a byte: index 0 is the empty string.
var (
	packedActions   = [...]string{"", ConnectionSuccess, ConnectionFailed, NetworkProtectionBlocked, NetworkProtectionWarned, NetworkProtectionAudited, NetworkProtectionUserBypassEvent, DnsQueryResponse}
	packedProtocols = [...]string{"", ProtoTCP, ProtoUDP, ProtoQUIC, ProtoDNS, ProtoICMP}
	packedSources   = [...]string{"", SourceDNS, SourceSNI, SourceQUIC, SourceHTTP, SourceIP, SourceConntrack}
)

// packedCode is s's index in table, or false when s is not in it.
func packedCode(table []string, s string) (uint8, bool) {
	for i, v := range table {
		if v == s {
			return uint8(i), true
		}
	}
	return 0, false
}

// Pack returns r packed. It allocates only for a record kept whole.
func Pack(r *Record) Packed {
	action, okA := packedCode(packedActions[:], r.ActionType)
	protocol, okP := packedCode(packedProtocols[:], r.Protocol)
	source, okS := packedCode(packedSources[:], r.Source)
	if !okA || !okP || !okS ||
		r.LostRecords != 0 || r.GapReason != "" ||
		r.PolicySequence != 0 || r.PolicyVersion != "" || !r.PolicyFreshAt.IsZero() ||
		r.OSPlatform != "" || r.OSVersion != "" || r.AgentVersion != "" ||
		r.IPAddresses != nil || r.LoggedOnUsers != nil ||
		int(int32(r.InitiatingProcessId)) != r.InitiatingProcessId ||
		int(uint16(r.RemotePort)) != r.RemotePort || int(uint16(r.LocalPort)) != r.LocalPort {
		whole := *r
		return Packed{ts: r.Timestamp, ext: &whole}
	}
	return Packed{
		ts: r.Timestamp, deviceID: r.DeviceId, deviceName: r.DeviceName,
		remoteIP: r.RemoteIP, remoteURL: r.RemoteUrl, localIP: r.LocalIP,
		file: r.InitiatingProcessFileName, account: r.InitiatingProcessAccountName,
		indicatorID: r.IndicatorId, application: r.Application, resolver: r.Resolver,
		bytesSent: r.BytesSent, bytesReceived: r.BytesReceived, repeat: r.RepeatCount,
		pid: int32(r.InitiatingProcessId), remotePort: uint16(r.RemotePort), localPort: uint16(r.LocalPort),
		action: action, protocol: protocol, source: source,
	}
}

// Record returns the record p was packed from.
func (p *Packed) Record() Record {
	if p.ext != nil {
		return *p.ext
	}
	return Record{
		Timestamp: p.ts, DeviceId: p.deviceID, DeviceName: p.deviceName,
		ActionType: packedActions[p.action],
		RemoteIP:   p.remoteIP, RemotePort: int(p.remotePort), RemoteUrl: p.remoteURL,
		LocalIP: p.localIP, LocalPort: int(p.localPort),
		Protocol:  packedProtocols[p.protocol],
		BytesSent: p.bytesSent, BytesReceived: p.bytesReceived,
		InitiatingProcessId: int(p.pid), InitiatingProcessFileName: p.file, InitiatingProcessAccountName: p.account,
		IndicatorId: p.indicatorID, Application: p.application,
		Source:      packedSources[p.source],
		RepeatCount: p.repeat, Resolver: p.resolver,
	}
}

// Timestamp is the record's Timestamp, without unpacking it.
func (p *Packed) Timestamp() time.Time { return p.ts }
