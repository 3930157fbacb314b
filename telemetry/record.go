// Package telemetry records network transactions and protection events and
// ships them to the console in chunks (CONTRACT §6).
package telemetry

import "time"

// ActionType values (CONTRACT §6, after the DeviceNetworkEvents table).
const (
	ConnectionSuccess                = "ConnectionSuccess"
	ConnectionFailed                 = "ConnectionFailed"
	NetworkProtectionBlocked         = "NetworkProtectionBlocked"
	NetworkProtectionWarned          = "NetworkProtectionWarned"
	NetworkProtectionAudited         = "NetworkProtectionAudited"
	NetworkProtectionUserBypassEvent = "NetworkProtectionUserBypassEvent"
	DnsQueryResponse                 = "DnsQueryResponse"
	// DeviceInfo is a machine record (at start, hourly and on change): the
	// OS, agent version, policy held, addresses and signed-in users.
	DeviceInfo = "DeviceInfo"
)

// Protocol values.
const (
	ProtoTCP  = "Tcp"
	ProtoUDP  = "Udp"
	ProtoQUIC = "Quic"
	ProtoDNS  = "Dns"
	// ProtoICMP is ICMP or ICMPv6: only on records of traffic the kernel
	// refused by an IP indicator (Source ip).
	ProtoICMP = "Icmp"
)

// Source values: which interceptor produced the record.
const (
	SourceDNS       = "dns"
	SourceSNI       = "sni"
	SourceQUIC      = "quic"
	SourceHTTP      = "http"
	SourceIP        = "ip"
	SourceConntrack = "conntrack"
)

// Record is one network transaction or protection event, one NDJSON line of a
// chunk. Field names are the wire format of CONTRACT §6; do not rename.
type Record struct {
	Timestamp                    time.Time `json:"Timestamp"`
	DeviceId                     string    `json:"DeviceId"`
	DeviceName                   string    `json:"DeviceName"`
	ActionType                   string    `json:"ActionType"`
	RemoteIP                     string    `json:"RemoteIP,omitempty"`
	RemotePort                   int       `json:"RemotePort,omitempty"`
	RemoteUrl                    string    `json:"RemoteUrl,omitempty"`
	LocalIP                      string    `json:"LocalIP,omitempty"`
	LocalPort                    int       `json:"LocalPort,omitempty"`
	Protocol                     string    `json:"Protocol,omitempty"`
	BytesSent                    int64     `json:"BytesSent,omitempty"`
	BytesReceived                int64     `json:"BytesReceived,omitempty"`
	InitiatingProcessId          int       `json:"InitiatingProcessId,omitempty"`
	InitiatingProcessFileName    string    `json:"InitiatingProcessFileName,omitempty"`
	InitiatingProcessAccountName string    `json:"InitiatingProcessAccountName,omitempty"`
	IndicatorId                  string    `json:"IndicatorId,omitempty"`
	Application                  string    `json:"Application,omitempty"`
	Source                       string    `json:"Source,omitempty"`
	// RepeatCount is how many identical transactions (same name, client or
	// process, user) this record stands for within the deduplication
	// window (DNS answers); absent means one.
	RepeatCount int64 `json:"RepeatCount,omitempty"`
	// Resolver says who asked the proxy on the user's behalf when the
	// client is a system stub resolver (systemd-resolved, dnsmasq...): the
	// process fields then name the stub, not the application, and the
	// flow records carry the application (see docs/telemetry.md).
	Resolver string `json:"Resolver,omitempty"`

	// Gap records only (ActionType TelemetryGap).
	LostRecords int64  `json:"LostRecords,omitempty"`
	GapReason   string `json:"GapReason,omitempty"`

	// Indicator set freshness records only (ActionType IndicatorSetStale,
	// IndicatorSetFresh): the feed sequence and version the device holds
	// and when the console last proved them current (CONTRACT §5).
	PolicySequence uint64    `json:"PolicySequence,omitempty"`
	PolicyVersion  string    `json:"PolicyVersion,omitempty"`
	PolicyFreshAt  time.Time `json:"PolicyFreshAt,omitzero"`

	// Machine records only (ActionType DeviceInfo; PolicySequence above is
	// the feed sequence held). IPAddresses never lists loopback.
	OSPlatform    string      `json:"OSPlatform,omitempty"`
	OSVersion     string      `json:"OSVersion,omitempty"`
	AgentVersion  string      `json:"AgentVersion,omitempty"`
	IPAddresses   []IPAddress `json:"IPAddresses,omitempty"`
	LoggedOnUsers []string    `json:"LoggedOnUsers,omitempty"`
}

// IPAddress is one address of one interface in a machine record.
type IPAddress struct {
	Interface string `json:"Interface"`
	Address   string `json:"Address"`
	Mac       string `json:"Mac,omitempty"`
}

// ActionTelemetryGap is the ActionType of a gap record: a line the agent adds
// to a chunk to tell the collector that records were lost before they could be
// uploaded (spool full, producer queue full, corrupt journal). It is valid
// NDJSON with the ordinary Timestamp/DeviceId/DeviceName fields, plus
// LostRecords and GapReason. See docs/telemetry.md.
const ActionTelemetryGap = "TelemetryGap"

// ActionIndicatorSetStale is the ActionType of the record an agent adds
// when the indicator set it holds from a feed has had no proof of being
// current for longer than indicators.maxAgeHours (a feed path that answers
// 304 for ever, or replays an old answer, looks like this), and again every
// hour while that lasts; ActionIndicatorSetFresh when a proof arrives again.
// The set stays in force either way. See docs/feed.md.
const (
	ActionIndicatorSetStale = "IndicatorSetStale"
	ActionIndicatorSetFresh = "IndicatorSetFresh"
)

// GapReason values of a gap record.
const (
	GapSpoolFull = "spoolFull" // the oldest chunk(s) were dropped because the spool was full
	GapQueueFull = "queueFull" // producers outran the writer; records were refused at Add
)
