package ingest

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/telemetry"
)

// ActionDeviceInfo is the machine record's ActionType (CONTRACT §6).
const ActionDeviceInfo = "DeviceInfo"

// record is one NDJSON line: telemetry.Record plus the CONTRACT §6 fields
// of machine records and RepeatCount that it does not carry yet (when it
// does, these outer fields shadow its own, with the same JSON names). Unknown fields are ignored, so a
// newer agent's chunks are taken.
type record struct {
	telemetry.Record
	RepeatCount   int64           `json:"RepeatCount"`
	OSPlatform    string          `json:"OSPlatform"`
	OSVersion     string          `json:"OSVersion"`
	AgentVersion  string          `json:"AgentVersion"`
	IPAddresses   []ipAddress     `json:"IPAddresses"`
	LoggedOnUsers json.RawMessage `json:"LoggedOnUsers"`
}

type ipAddress struct {
	Interface string `json:"Interface"`
	Address   string `json:"Address"`
	Mac       string `json:"Mac"`
}

// users reads LoggedOnUsers: a list of names, or of objects naming the
// user in UserName, AccountName or Name.
func (r *record) users() []string {
	b := bytes.TrimSpace(r.LoggedOnUsers)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	var names []string
	if json.Unmarshal(b, &names) == nil {
		return names
	}
	var objs []map[string]any
	if json.Unmarshal(b, &objs) != nil {
		return nil
	}
	for _, o := range objs {
		for _, k := range []string{"UserName", "AccountName", "Name", "User"} {
			if s, ok := o[k].(string); ok && s != "" {
				names = append(names, s)
				break
			}
		}
	}
	return names
}

// limits on one record's strings, so a hostile chunk cannot make the
// database hold megabyte keys.
const (
	maxName  = 255
	maxUsers = 64
	maxAddrs = 256
)

// Timestamps further from the receipt time than these are clamped to the
// receipt time: an endpoint whose clock reads 1970 until NTP syncs, or a
// bad RTC dated 9999, still sent real transactions, and the receipt time is
// the best estimate of when they happened. An agent spools at most a few
// days of chunks, so a year back is generous.
const (
	maxRecordAge  = 366 * 24 * time.Hour
	maxClockAhead = time.Hour
)

// Reasons a single record is skipped (the rest of its chunk is taken).
const (
	skipMalformed    = "malformed"
	skipLineTooLong  = "lineTooLong"
	skipNoTimestamp  = "noTimestamp"
	skipDeviceID     = "otherDeviceId"
	skipActionType   = "badActionType"
	skipPort         = "badPort"
	skipNegative     = "negativeCount"
	skipFieldTooLong = "fieldTooLong"
)

// check says why a record cannot be counted ("" when it can) and clamps a
// timestamp outside [received − maxRecordAge, received + maxClockAhead] to
// received (clamped reports it).
func (r *record) check(device string, received time.Time) (skip string, clamped bool) {
	switch {
	case r.Timestamp.IsZero():
		return skipNoTimestamp, false
	case r.DeviceId != device:
		return skipDeviceID, false
	case r.ActionType == "" || len(r.ActionType) > 64:
		return skipActionType, false
	case r.RemotePort < 0 || r.RemotePort > 65535 || r.LocalPort < 0 || r.LocalPort > 65535:
		return skipPort, false
	case r.BytesSent < 0 || r.BytesReceived < 0 || r.LostRecords < 0 || r.RepeatCount < 0:
		return skipNegative, false
	case len(r.RemoteUrl) > 2048 || len(r.InitiatingProcessAccountName) > maxName || len(r.LocalIP) > 64 || len(r.DeviceName) > maxName:
		return skipFieldTooLong, false
	}
	if r.Timestamp.Before(received.Add(-maxRecordAge)) || r.Timestamp.After(received.Add(maxClockAhead)) {
		r.Timestamp = received
		return "", true
	}
	return "", false
}

// batch accumulates one chunk's aggregates.
type batch struct {
	store.ChunkBatch
	matcher interface {
		Match(string) (catalog.App, bool)
	}
	records, unknown int64
	// skipped counts records left out, by reason; clamped the timestamps
	// moved to the receipt time.
	skipped map[string]int64
	clamped int64
	// mem estimates the aggregates' bytes (charged to the memory budget);
	// folded counts records whose keys went past the caps below.
	mem, folded int64
	caps        keyCaps
	// hook sees each counted transaction (Config.Hook), nil without one.
	hook ChunkHook
	// hosts caches match by RemoteUrl for the chunk (its matcher is
	// fixed): a device's records name a few hundred hosts, and reducing
	// and matching each record's name again was 7 % of the console's CPU
	// at fleet rate (issue 22). Bounded like the interner: at most
	// hostCacheMax names of at most hostCacheMaxLen bytes (~200 KB with
	// the map's overhead; perUpload covers it).
	hosts map[string]hostApp
}

// hostApp is what a RemoteUrl comes to: its host name and the app that
// claims it ("" for none).
type hostApp struct{ domain, appID string }

const (
	hostCacheMax    = 1024
	hostCacheMaxLen = 128
)

// match reduces a RemoteUrl to its host (catalog.HostOf) and the app the
// chunk's matcher gives it.
func (b *batch) match(url string) (domain, appID string) {
	if h, ok := b.hosts[url]; ok {
		return h.domain, h.appID
	}
	domain = catalog.HostOf(url)
	if domain != "" && b.matcher != nil {
		if a, ok := b.matcher.Match(domain); ok {
			appID = a.ID
		}
	}
	if len(url) <= hostCacheMaxLen && len(b.hosts) < hostCacheMax {
		if b.hosts == nil {
			b.hosts = make(map[string]hostApp, 64)
		}
		b.hosts[url] = hostApp{domain, appID}
	}
	return domain, appID
}

// Caps on the distinct keys one chunk adds (review #5): an agent's chunk
// of 4,000 records stays far below them; a hostile one with 200,000
// distinct domains, users or addresses is folded instead of making the
// console (and the database) hold one row per record. Past a cap, traffic
// is counted under the domain "(other)" of its hour, an ActionType under
// "(other)", and users and addresses are not kept.
type keyCaps struct{ traffic, users, actions, seen int }

var defaultCaps = keyCaps{traffic: 20000, users: 20000, actions: 1000, seen: 1000}

// OtherKey names what was folded.
const OtherKey = "(other)"

// Estimated bytes of one new map entry (key, value, map overhead), plus
// its strings' lengths.
const (
	trafficEntryBytes = 200
	userEntryBytes    = 160
	seenEntryBytes    = 220
	actionEntryBytes  = 100
)

func newBatch(m interface {
	Match(string) (catalog.App, bool)
}) *batch {
	return &batch{matcher: m, skipped: map[string]int64{}, ChunkBatch: store.ChunkBatch{
		Traffic: map[store.TrafficKey]*store.Counters{}, Users: map[store.UserKey]struct{}{}, Bypassers: map[store.UserKey]struct{}{},
		Actions: map[store.ActionKey]int64{}, People: map[string]*store.Seen{}, Addresses: map[string]*store.Seen{},
	}}
}

// seen records a sighting; nil when the map is at its cap and key is new.
func (b *batch) seen(m map[string]*store.Seen, key string, at time.Time) *store.Seen {
	s, ok := m[key]
	if !ok {
		if len(m) >= b.caps.seen {
			return nil
		}
		s = &store.Seen{Value: key, FirstSeen: at, LastSeen: at}
		m[key] = s
		b.mem += seenEntryBytes + int64(len(key))
	}
	if at.Before(s.FirstSeen) {
		s.FirstSeen = at
	}
	if at.After(s.LastSeen) {
		s.LastSeen = at
	}
	return s
}

// known ActionTypes that stand for a transaction, with the counter each
// adds to besides transactions.
var transactionActions = map[string]func(*store.Counters, int64){
	telemetry.ConnectionSuccess:                func(*store.Counters, int64) {},
	telemetry.DnsQueryResponse:                 func(*store.Counters, int64) {},
	telemetry.ConnectionFailed:                 func(c *store.Counters, n int64) { c.Failures += n },
	telemetry.NetworkProtectionBlocked:         func(c *store.Counters, n int64) { c.Blocks += n },
	telemetry.NetworkProtectionWarned:          func(c *store.Counters, n int64) { c.Warns += n },
	telemetry.NetworkProtectionAudited:         func(c *store.Counters, n int64) { c.Audits += n },
	telemetry.NetworkProtectionUserBypassEvent: func(c *store.Counters, n int64) { c.Bypasses += n },
}

// add counts one record. Every ActionType, known or not, is counted per
// hour; transactions go into the device × hour × app × domain aggregate.
func (b *batch) add(r *record) {
	b.records++
	ts := r.Timestamp.UTC()
	hour := store.HourOf(ts)
	ak := store.ActionKey{Hour: hour, ActionType: r.ActionType}
	if _, ok := b.Actions[ak]; !ok {
		if len(b.Actions) >= b.caps.actions {
			ak.ActionType = OtherKey
			b.folded++
		}
		if _, ok := b.Actions[ak]; !ok {
			b.mem += actionEntryBytes + int64(len(ak.ActionType))
		}
	}
	b.Actions[ak]++
	if r.ActionType == ActionDeviceInfo {
		b.addInfo(r, ts)
		return
	}
	count, ok := transactionActions[r.ActionType]
	if !ok {
		if r.ActionType != telemetry.ActionTelemetryGap {
			b.unknown++
		}
		return
	}
	n := max(r.RepeatCount, 1)
	domain, appID := b.match(r.RemoteUrl)
	k := store.TrafficKey{Hour: hour, AppID: appID, Domain: domain}
	c := b.Traffic[k]
	if c == nil && len(b.Traffic) >= b.caps.traffic {
		k = store.TrafficKey{Hour: hour, Domain: OtherKey}
		c = b.Traffic[k]
		b.folded++
	}
	if c == nil {
		c = &store.Counters{}
		b.Traffic[k] = c
		b.mem += trafficEntryBytes + int64(len(k.AppID)+len(k.Domain))
	}
	c.Transactions += n
	c.BytesSent += r.BytesSent
	c.BytesReceived += r.BytesReceived
	count(c, n)
	if b.hook != nil {
		b.hook.Record(&r.Record, n, appID, domain)
	}
	if u := r.InitiatingProcessAccountName; u != "" {
		uk := store.UserKey{TrafficKey: k, User: u}
		if _, ok := b.Users[uk]; !ok {
			if len(b.Users) < b.caps.users {
				b.Users[uk] = struct{}{}
				b.mem += userEntryBytes + int64(len(k.AppID)+len(k.Domain)+len(u))
			}
		}
		if r.ActionType == telemetry.NetworkProtectionUserBypassEvent {
			if _, ok := b.Users[uk]; ok {
				b.Bypassers[uk] = struct{}{}
			}
		}
		b.seen(b.People, u, ts)
	}
	if r.LocalIP != "" {
		b.seen(b.Addresses, r.LocalIP, ts)
	}
}

func (b *batch) addInfo(r *record, ts time.Time) {
	users := r.users()
	if len(users) > maxUsers {
		users = users[:maxUsers]
	}
	for _, u := range users {
		if u != "" && len(u) <= maxName {
			b.seen(b.People, u, ts)
		}
	}
	for i, a := range r.IPAddresses {
		if i == maxAddrs || a.Address == "" || len(a.Address) > 64 {
			break
		}
		if s := b.seen(b.Addresses, a.Address, ts); s != nil {
			s.Interface, s.MAC = truncate(a.Interface, 64), truncate(a.Mac, 64)
		}
	}
	if b.Info == nil || !ts.Before(b.Info.At) {
		b.Info = &store.DeviceInfo{At: ts, Name: r.DeviceName, OSPlatform: truncate(r.OSPlatform, 64), OSVersion: truncate(r.OSVersion, maxName),
			AgentVersion: truncate(r.AgentVersion, 64), LoggedOnUsers: users}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
