// Package control is netward's local control API: net/http over a unix
// socket (Linux and other Unix) or named pipes (Windows), with the peer's OS
// identity captured per connection. It follows tailscale's local API design:
// every handler is either a read (any local user) or an admin call (root /
// Administrators), and requests a web browser could forge (Origin, Referer,
// foreign Host) are refused, so a web page cannot drive the agent.
//
// The JSON types in this file are the stable `--json` shapes of the CLI
// (CONTRACT §3): the wire schema is this package's own, field by field; the
// agent fills it from the components' counters.
package control

import (
	"context"
	"errors"
	"time"
)

// APIVersion is the path prefix of every endpoint.
const APIVersion = "/v1"

// Host is the HTTP Host the client sends. The server accepts only Host values
// in allowedHosts: a browser tricked into talking to the socket through a
// proxy would send the page's host.
const Host = "netward"

// Backend is what the server needs from the agent. *agent.Agent implements it
// through a small adapter; tests use a fake.
type Backend interface {
	Status() Status
	// Check explains the decision for a name, URL or IP address, with the
	// bypass state for user ("" = the device).
	Check(query, user string) (CheckResult, error)
	// CreateBypass continues past the Warn for name on behalf of user.
	// Errors wrap bypass.ErrBlock, bypass.ErrNotWarned or bypass.ErrFull
	// when they apply.
	CreateBypass(name, user string) (Bypass, error)
	ListBypasses() []BypassInfo
	RevokeBypass(name string) (int, error)
	// SetMode sets the local mode override (off, audit, block), which stays
	// over the modes indicator sets bring until cleared; "" clears it.
	SetMode(mode string) error
	// Reload re-reads the indicator source. ErrNotSupported → 501.
	Reload(ctx context.Context) error
}

// Requeuer is a Backend that can queue quarantined telemetry chunks for
// upload again (POST /v1/telemetry/requeue); a Backend without it answers
// 501.
type Requeuer interface {
	// RequeueTelemetry moves every quarantined chunk back into the spool
	// and returns how many.
	RequeueTelemetry() (int, error)
}

// RequeueResult is the answer to a requeue.
type RequeueResult struct {
	Requeued int `json:"requeued"`
}

// ErrNotSupported is returned by a Backend for a call this build cannot do.
var ErrNotSupported = errors.New("not supported by this agent")

// ErrBadQuery marks Check errors about the query itself (→ 400). Wrap an
// error with BadQuery: its message stays the user's, without this one.
var ErrBadQuery = errors.New("bad query")

// BadQuery marks err as a problem of the query (errors.Is(…, ErrBadQuery))
// without adding words to its message.
func BadQuery(err error) error { return badQueryError{err} }

type badQueryError struct{ err error }

func (e badQueryError) Error() string        { return e.err.Error() }
func (e badQueryError) Unwrap() error        { return e.err }
func (e badQueryError) Is(target error) bool { return target == ErrBadQuery }

// Peer is the OS identity of the process on the other end of a connection.
type Peer struct {
	// Known is false when the OS did not tell (the peer is then a plain user).
	Known bool   `json:"known"`
	UID   int    `json:"uid"`
	PID   int    `json:"pid"`
	User  string `json:"user"`
	Admin bool   `json:"admin"`
}

// Status is `netward status --json`.
type Status struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Mode    string `json:"mode"`
	// ModeOverride is the admin's local override (`netward mode`) when one
	// is in force; SourceMode is the mode the indicator source (or the
	// config) asks for, which applies again once the override is cleared.
	ModeOverride       string    `json:"modeOverride,omitempty"`
	SourceMode         string    `json:"sourceMode,omitempty"`
	ConvertWarnToBlock bool      `json:"convertWarnToBlock"`
	StartedAt          time.Time `json:"startedAt"`
	UptimeSeconds      int64     `json:"uptimeSeconds"`
	Config             string    `json:"config"`

	Indicators   IndicatorStatus   `json:"indicators"`
	Interception InterceptionState `json:"interception"`
	Bypasses     BypassStatus      `json:"bypasses"`
	// Telemetry is the telemetry pipeline's status (spool depth, last upload,
	// losses); its fields are documented in docs/telemetry.md.
	Telemetry *TelemetryStatus `json:"telemetry,omitempty"`
	// Errors are the most recent component errors, newest first.
	Errors []ErrorEntry `json:"errors"`
	// Warnings are what the configuration exposes in clear text (an
	// http:// feed without a public key, an http:// telemetry endpoint),
	// for as long as it does.
	Warnings []string `json:"warnings,omitempty"`
}

// IndicatorStatus describes the indicator set in force.
type IndicatorStatus struct {
	Source      string         `json:"source"`
	Version     string         `json:"version"`
	GeneratedAt time.Time      `json:"generatedAt,omitzero"`
	LoadedAt    time.Time      `json:"loadedAt,omitzero"`
	AgeSeconds  int64          `json:"ageSeconds"`
	Total       int            `json:"total"`
	ByAction    map[string]int `json:"byAction"`
	// HTTPOnly counts Url indicators with a path: enforceable on plain HTTP
	// only (CONTRACT §1).
	HTTPOnly int    `json:"httpOnly"`
	Swaps    uint64 `json:"swaps"`
	// FromStore is true while the set in force is the last-good set
	// restored from disk at start (the source has not answered yet).
	FromStore bool `json:"fromStore,omitempty"`
	// NextExpiry is when the next indicator in force expires.
	NextExpiry time.Time `json:"nextExpiry,omitzero"`
	// Rejected counts entries of the set refused by validation.
	Rejected int `json:"rejected,omitempty"`
	// LastError, LastErrorAt and Failures describe failed reads of the
	// source since it last answered; the set in force stays meanwhile.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	Failures    int       `json:"failures,omitempty"`
	// Sequence is the feed sequence held (CONTRACT §5): the rollback
	// floor. 0 for file:// and builtin: sources and unsequenced feeds.
	Sequence uint64 `json:"sequence,omitempty"`
	// FreshAt is when the console last proved the set held current
	// (Netward-Freshness); Stale is true once that is more than
	// MaxAgeHours ago — the set stays in force, but a frozen or replayed
	// feed path looks like this. FreshnessError says why the last answer
	// proved nothing. https feeds only.
	FreshAt        time.Time `json:"freshAt,omitzero"`
	Stale          bool      `json:"stale,omitempty"`
	MaxAgeHours    int       `json:"maxAgeHours,omitempty"`
	FreshnessError string    `json:"freshnessError,omitempty"`
}

// InterceptionState says which interceptors run.
type InterceptionState struct {
	DNS        bool     `json:"dns"`
	DNSListen  []string `json:"dnsListen"`
	DNSCapture bool     `json:"dnsCapture"`
	SNI        bool     `json:"sni"`
	QUIC       string   `json:"quic"`
	// DNSStats are the DNS proxy's counters when it runs (docs/dns.md).
	DNSStats *DNSStats `json:"dnsStats,omitempty"`
	// Inspect are the inline inspector's counters when it runs
	// (docs/inspect.md).
	Inspect *InspectStats `json:"inspect,omitempty"`
}

// DNSStats are the DNS proxy's counters. The ones `netward status` prints
// are always present; the others are optional: an agent that does not keep
// one leaves it out (this one reports them all).
type DNSStats struct {
	Queries uint64 `json:"queries"`
	// ByVerdict counts answered queries by verdict: allow, audit, block,
	// warn, bypassed (a CNAME target's verdict counts when it decided).
	ByVerdict map[string]uint64 `json:"byVerdict"`
	// Special counts the DoH canary and iCloud Private Relay NXDOMAINs.
	Special      *uint64 `json:"special,omitempty"`
	CacheHits    uint64  `json:"cacheHits"`
	CacheMisses  uint64  `json:"cacheMisses"`
	CacheEntries *int    `json:"cacheEntries,omitempty"`
	// UpstreamErrors counts failed upstream attempts (timeouts, refused,
	// bad replies); ServFail the queries answered SERVFAIL because every
	// upstream failed.
	UpstreamQueries *uint64 `json:"upstreamQueries,omitempty"`
	UpstreamErrors  uint64  `json:"upstreamErrors"`
	ServFail        uint64  `json:"servFail"`
	// BadReplies counts upstream datagrams ignored because they did not
	// match the question and ID (spoofing attempts, late replies).
	BadReplies *uint64 `json:"badReplies,omitempty"`
	TCPRetries *uint64 `json:"tcpRetries,omitempty"`
	InFlight   int64   `json:"inFlight"`
	// Refused counts queries refused at the in-flight bound; Rejected
	// queries answered with an error for what they asked (wrong class,
	// zone transfer, malformed, not a query); Panics queries answered
	// SERVFAIL because answering them panicked (a bug).
	Refused  *uint64 `json:"refused,omitempty"`
	Rejected *uint64 `json:"rejected,omitempty"`
	Panics   *uint64 `json:"panics,omitempty"`
	// LatencyCounts is the histogram of answer times: the queries answered
	// within each bound of dnsproxy.LatencyBounds (and above the previous
	// one), then beyond the last; LatencySumNs their total.
	LatencyCounts []uint64 `json:"latencyCounts,omitempty"`
	LatencySumNs  *int64   `json:"latencySumNs,omitempty"`
	Upstreams     []string `json:"upstreams,omitempty"`
}

// InspectStats are the inline inspector's counters. The names are the
// ones the first versions printed (docs/inspect.md).
type InspectStats struct {
	Packets        uint64 `json:"Packets"`
	Allowed        uint64 `json:"Allowed"`
	Blocked        uint64 `json:"Blocked"`
	Named          uint64 `json:"Named"`
	IPOnly         uint64 `json:"IPOnly"`
	Unreadable     uint64 `json:"Unreadable"`
	QUICDropped    uint64 `json:"QUICDropped"`
	DeadlineMissed uint64 `json:"DeadlineMissed"`
	FlowsFull      uint64 `json:"FlowsFull"`
	DecodeErrors   uint64 `json:"DecodeErrors"`
	Verdicts       uint64 `json:"Verdicts"`
	VerdictErrors  uint64 `json:"VerdictErrors"`
	Panics         uint64 `json:"Panics"`
	KernelRefused  uint64 `json:"KernelRefused"`
}

// TelemetryStatus is the telemetry pipeline's status (docs/telemetry.md).
type TelemetryStatus struct {
	// DeviceID is the id in every record and upload path (device.id
	// resolved: "auto" never shows here).
	DeviceID       string    `json:"deviceId,omitempty"`
	Endpoint       string    `json:"endpoint,omitempty"`
	SpoolChunks    int       `json:"spoolChunks"`
	SpoolBytes     int64     `json:"spoolBytes"`
	SpoolRecords   int64     `json:"spoolRecords"`
	OpenRecords    int64     `json:"openRecords"`
	QueuedRecords  int       `json:"queuedRecords"`
	UploadedChunks int64     `json:"uploadedChunks"`
	LastUpload     time.Time `json:"lastUpload,omitzero"`
	LastError      string    `json:"lastError,omitempty"`
	Quarantined    int       `json:"quarantinedChunks"`
	QuarantinedIDs []string  `json:"quarantinedIds,omitempty"`
	// DroppedQueueFull counts records refused because the queue was full;
	// DroppedSpoolRecords and DroppedSpoolChunks what a full spool evicted.
	DroppedQueueFull    int64 `json:"droppedQueueFull"`
	DroppedSpoolRecords int64 `json:"droppedSpoolRecords"`
	DroppedSpoolChunks  int64 `json:"droppedSpoolChunks"`
	// Flows are the conntrack flow source's counters (absent when it does
	// not run).
	Flows *FlowStats `json:"flows,omitempty"`
	// DNSAnswers are the allowed-answer recorder's counters (absent when
	// telemetry.dnsAnswers is off).
	DNSAnswers *AnswerStats `json:"dnsAnswers,omitempty"`
}

// AnswerStats count allowed DNS answers recorded as DnsQueryResponse.
type AnswerStats struct {
	// Received answers the recorder took from its queue; Recorded the
	// records written for them (after deduplication); Dropped answers not
	// queued because the queue was full; Own the agent's own queries, left out.
	Received uint64 `json:"received"`
	Recorded uint64 `json:"recorded"`
	Dropped  uint64 `json:"dropped"`
	Own      uint64 `json:"own"`
	// Window is the deduplication window (telemetry.dedupWindow).
	Window string `json:"window"`
}

// FlowStats are the conntrack flow source's counters, all monotonic but
// Flows.
type FlowStats struct {
	Events uint64 `json:"events"`
	// Overruns counts ENOBUFS: events the kernel lost, healed by a dump.
	Overruns uint64 `json:"overruns"`
	Dumps    uint64 `json:"dumps"`
	Records  uint64 `json:"records"`
	// Flows is the flows tracked now; FlowsDropped those not tracked
	// because the table was full.
	Flows        int    `json:"flows"`
	FlowsDropped uint64 `json:"flowsDropped"`
	// Unnamed counts flow records without a RemoteUrl (neither SNI/Host nor
	// a DNS answer on this host named the remote); UnnamedShare is
	// Unnamed / Records (0 before the first record). Own counts the
	// agent's own flows, left out of the records.
	Unnamed      uint64  `json:"unnamed"`
	UnnamedShare float64 `json:"unnamedShare"`
	Own          uint64  `json:"own"`
	// Refused counts records the telemetry queue refused (a dump's are
	// reported again with the next dump); Undecoded dump messages that did
	// not decode.
	Refused   uint64 `json:"refused,omitempty"`
	Undecoded uint64 `json:"undecoded,omitempty"`
}

// BypassStatus counts active bypasses by application or indicator.
type BypassStatus struct {
	Active   int            `json:"active"`
	ByTarget map[string]int `json:"byTarget"`
}

// ErrorEntry is one recent component error.
type ErrorEntry struct {
	Time      time.Time `json:"time"`
	Component string    `json:"component"`
	Message   string    `json:"message"`
}

// CheckResult is `netward check --json`.
type CheckResult struct {
	Query string `json:"query"`
	// Kind is "name", "url" or "ip".
	Kind string `json:"kind"`
	// Target is the canonical name, URL (host+path) or address checked.
	Target string `json:"target"`
	// Action is what the agent does now: allow, audit, block, warn, bypassed.
	Action string `json:"action"`
	// Would is what block mode would do (differs in audit/off mode).
	Would string `json:"would"`
	Mode  string `json:"mode"`
	// Indicator is the matched indicator, null when none matched.
	Indicator *Indicator `json:"indicator"`
	// Interceptors are the components that would enforce the decision
	// ("dns", "sni", "quic", "http", "ip"); empty when none runs for it.
	Interceptors []string `json:"interceptors"`
	// Note explains limits, e.g. a path-bearing URL over TLS.
	Note   string      `json:"note,omitempty"`
	Bypass BypassState `json:"bypass"`
}

// Indicator is the matched indicator of a check.
type Indicator struct {
	Value         string `json:"value"`
	Type          string `json:"type"`
	Action        string `json:"action"`
	ID            string `json:"id"`
	Title         string `json:"title"`
	Application   string `json:"application"`
	ApplicationID string `json:"applicationId"`
}

// BypassState is the bypass part of a check.
type BypassState struct {
	// Possible: the match is a Warn the user may continue past.
	Possible bool `json:"possible"`
	// Active: a bypass (by this user or the whole device) is in force.
	Active  bool      `json:"active"`
	Expires time.Time `json:"expiresAt,omitzero"`
}

// Bypass is one bypass: the answer to `netward bypass NAME --json`.
type Bypass struct {
	// User is the account that continued, "" for the whole device.
	User string `json:"user"`
	// Application is set when the bypass covers a whole application;
	// otherwise Indicator and IndicatorType name the indicator.
	Application   string `json:"application,omitempty"`
	Indicator     string `json:"indicator,omitempty"`
	IndicatorType string `json:"indicatorType,omitempty"`
	IndicatorID   string `json:"indicatorId,omitempty"`
	// Name is the name the user asked for when continuing.
	Name    string    `json:"name"`
	Created time.Time `json:"createdAt"`
	Expires time.Time `json:"expiresAt"`
	// Who created it: the user name, or "device" when unknown; How: "page"
	// (the warn page's Continue) or "cli" (netward bypass).
	Who string `json:"who"`
	How string `json:"how"`
}

// BypassInfo is one entry of `netward bypass --list --json`: the bypass and
// the title of the indicator it continues past, "" when the indicator is no
// longer in force.
type BypassInfo struct {
	Bypass
	Title string `json:"title"`
}

// BypassRequest is the body of POST /v1/bypasses and DELETE /v1/bypasses.
type BypassRequest struct {
	Name string `json:"name"`
}

// RevokeResult is the answer to a revoke.
type RevokeResult struct {
	Name    string `json:"name"`
	Removed int    `json:"removed"`
}

// ModeRequest is the body of PUT /v1/mode.
type ModeRequest struct {
	Mode string `json:"mode"`
}

// ModeState is the answer of PUT and DELETE /v1/mode: the mode in force,
// the override ("" when none) and the source's mode.
type ModeState struct {
	Mode       string `json:"mode"`
	Override   string `json:"override,omitempty"`
	SourceMode string `json:"sourceMode,omitempty"`
}

// EventError is the last NDJSON line of an event stream that had to end
// early (a reader too slow to keep up), so no event is dropped silently.
type EventError struct {
	Error   string `json:"error"`
	Dropped int    `json:"dropped"`
}

// apiError is every error body.
type apiError struct {
	Error string `json:"error"`
}
