package ingest

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/netward/netward/internal/jsonbytes"
)

// decodeRecord reads one NDJSON line into r. Agents write flat records of
// strings and integers, and reflection-driven encoding/json was the larger
// part of ingest's CPU once the database writes were batched
// (docs/scale.md), so such lines are read here directly; any line that is
// not plainly that shape — an escape, a nested value, null, a float, a
// key that differs from a field name only in case, broken JSON — goes to
// json.Unmarshal, which stays the reference for what a record means
// (FuzzDecodeRecord holds the two to the same result).
//
// r is zeroed first: parse decodes every line of a chunk into one record
// (one allocated per line was 2.4 % of the console's CPU at fleet rate), and
// in carries what the chunk's earlier lines left (FuzzDecodeRecords).
func decodeRecord(line []byte, r *record, in *interner) error {
	*r = record{}
	if fastDecode(line, r, in) {
		return nil
	}
	*r = record{}
	return json.Unmarshal(line, r)
}

// fastDecode reports false, with r in any state, when the line needs
// json.Unmarshal.
func fastDecode(b []byte, r *record, in *interner) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		key, j, ok := plainString(b, i, nil)
		if !ok {
			return false
		}
		j = skipWS(b, j)
		if j >= len(b) || b[j] != ':' {
			return false
		}
		j = skipWS(b, j+1)
		if j >= len(b) {
			return false
		}
		var end int
		if b[j] == '"' {
			var val []byte
			if val, end, ok = plainString(b, j, in.scratchBuf()); !ok || !r.setString(key, val, b[j:end], in) {
				return false
			}
		} else {
			end = j
			for end < len(b) && (b[end] == '-' || b[end] >= '0' && b[end] <= '9') {
				end++
			}
			n, ok := plainInt(b[j:end])
			if !ok || !r.setInt(key, n) {
				return false
			}
		}
		i = skipWS(b, end)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return skipWS(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a string at b[i] in valid UTF-8 without control
// characters; of escapes it takes the one-letter ones (a Windows account
// is "CORP\\alice"), not \u. It returns the content and the index after
// the closing quote. An escaped string's content is written to *scratch
// when scratch is not nil (reused: the caller copies it before the next
// call; an account name "CORP\\alice" was an allocation per record), else
// to a new slice.
func plainString(b []byte, i int, scratch *[]byte) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	ascii, escaped := true, false
	j := i + 1
	for j < len(b) {
		// Eight bytes at a time while none is a quote, a backslash, a
		// control character or the start of a UTF-8 sequence: most of a
		// line's strings are plain ASCII ids and names, and the byte loop
		// was 8 % of the console's CPU at fleet rate (issue 22).
		for j+8 <= len(b) && jsonbytes.Plain8(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		if j >= len(b) {
			break
		}
		c := b[j]
		if c == '"' {
			break
		}
		switch {
		case c == '\\':
			escaped = true
			j++
		case c < 0x20:
			return nil, 0, false
		case c >= 0x80:
			ascii = false
		}
		j++
	}
	if j >= len(b) {
		return nil, 0, false
	}
	s = b[i+1 : j]
	if !ascii && !utf8.Valid(s) {
		return nil, 0, false
	}
	if escaped {
		var dst []byte
		if scratch != nil {
			dst = (*scratch)[:0]
		}
		if s, ok = unescapeShort(dst, s); !ok {
			return nil, 0, false
		}
		if scratch != nil {
			*scratch = s
		}
	}
	return s, j + 1, true
}

// unescapeShort appends to out the one-letter escapes of s resolved, s the
// content of a JSON string whose closing quote plainString found (so no
// backslash is last); false for any other escape (\u), which json.Unmarshal
// then reads.
func unescapeShort(out, s []byte) ([]byte, bool) {
	out = slices.Grow(out, len(s))
	for k := 0; k < len(s); k++ {
		if s[k] != '\\' {
			out = append(out, s[k])
			continue
		}
		k++
		switch s[k] {
		case '"', '\\', '/':
			out = append(out, s[k])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default:
			return nil, false
		}
	}
	return out, true
}

// plainInt reads a JSON integer without fraction or exponent that fits
// 53 bits (beyond, and for anything else, json.Unmarshal decides).
func plainInt(b []byte) (int64, bool) {
	d := b
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || len(d) > 15 || (d[0] == '0' && len(d) > 1) {
		return 0, false
	}
	// At most 15 digits cannot overflow; strconv.ParseInt(string(b)) cost
	// an allocation per number (its error keeps the string).
	var n int64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if len(d) < len(b) {
		n = -n
	}
	return n, true
}

// The string fields setString sets, indexing interner.last.
const (
	fieldDeviceId = iota
	fieldDeviceName
	fieldActionType
	fieldRemoteIP
	fieldRemoteUrl
	fieldLocalIP
	fieldProtocol
	fieldInitiatingProcessFileName
	fieldInitiatingProcessAccountName
	fieldIndicatorId
	fieldApplication
	fieldSource
	fieldGapReason
	fieldPolicyVersion
	fieldOSPlatform
	fieldOSVersion
	fieldAgentVersion
	numFields
)

// setString sets a string field named exactly key (quoted is the JSON
// string with its quotes, for times); false for any other key, so that
// json.Unmarshal's rules (case-insensitive names, shadowed fields) decide.
func (r *record) setString(key, b, quoted []byte, in *interner) bool {
	switch string(key) {
	case "Timestamp":
		return r.Timestamp.UnmarshalJSON(quoted) == nil
	case "DeviceId":
		r.DeviceId = in.field(fieldDeviceId, b)
	case "DeviceName":
		r.DeviceName = in.field(fieldDeviceName, b)
	case "ActionType":
		r.ActionType = in.field(fieldActionType, b)
	case "RemoteIP":
		r.RemoteIP = in.field(fieldRemoteIP, b)
	case "RemoteUrl":
		r.RemoteUrl = in.field(fieldRemoteUrl, b)
	case "LocalIP":
		r.LocalIP = in.field(fieldLocalIP, b)
	case "Protocol":
		r.Protocol = in.field(fieldProtocol, b)
	case "InitiatingProcessFileName":
		r.InitiatingProcessFileName = in.field(fieldInitiatingProcessFileName, b)
	case "InitiatingProcessAccountName":
		r.InitiatingProcessAccountName = in.field(fieldInitiatingProcessAccountName, b)
	case "IndicatorId":
		r.IndicatorId = in.field(fieldIndicatorId, b)
	case "Application":
		r.Application = in.field(fieldApplication, b)
	case "Source":
		r.Source = in.field(fieldSource, b)
	case "GapReason":
		r.GapReason = in.field(fieldGapReason, b)
	case "PolicyVersion":
		r.PolicyVersion = in.field(fieldPolicyVersion, b)
	case "OSPlatform":
		r.OSPlatform = in.field(fieldOSPlatform, b)
	case "OSVersion":
		r.OSVersion = in.field(fieldOSVersion, b)
	case "AgentVersion":
		r.AgentVersion = in.field(fieldAgentVersion, b)
	default:
		return r.ignorable(key)
	}
	return true
}

// setInt sets an integer field named exactly key.
func (r *record) setInt(key []byte, n int64) bool {
	switch string(key) {
	case "RemotePort":
		r.RemotePort = int(n)
	case "LocalPort":
		r.LocalPort = int(n)
	case "BytesSent":
		r.BytesSent = n
	case "BytesReceived":
		r.BytesReceived = n
	case "InitiatingProcessId":
		r.InitiatingProcessId = int(n)
	case "LostRecords":
		r.LostRecords = n
	case "RepeatCount":
		r.RepeatCount = n
	default:
		return r.ignorable(key)
	}
	return true
}

// ignorable: a key that names no field of record in any case is skipped,
// as json.Unmarshal skips it (a newer agent's fields stay on the fast
// path); one that matches a field but for case, or a field not handled
// above, needs json.Unmarshal.
func (*record) ignorable(key []byte) bool {
	for _, f := range recordFields {
		if len(f) == len(key) && strings.EqualFold(f, string(key)) {
			return false
		}
	}
	return true
}

// recordFields are the JSON names of record's fields, promoted ones
// included: derived from the types, so a field added to telemetry.Record is
// never silently skipped.
var recordFields = func() []string {
	var out []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			out = append(out, name)
		}
	}
	walk(reflect.TypeFor[record]())
	return out
}()

// interner gives one string for equal bytes within a chunk: a chunk's
// records repeat their device, user, process, action and most names, and
// a string allocated per field and record was a fifth of ingest's
// allocations (and the collector's work after them). Bounded, so a chunk
// of distinct values costs what it did: values longer than
// internMaxLen, and new values past internMaxEntries, are allocated as
// before. The zero interner (or nil) interns nothing.
//
// In front of the map, each field remembers its previous record's value:
// most fields repeat it (the device, its name, the local address, the
// process; half the actions), and comparing with it is cheaper than
// hashing the bytes for the map (the interner's lookups were 6 % of the
// console's CPU at fleet rate, issue 22).
type interner struct {
	m    map[string]string
	last [numFields]string
	// scratch holds an escaped string's content until it is interned.
	scratch []byte
}

const (
	internMaxLen     = 128
	internMaxEntries = 1024
)

func newInterner() *interner { return &interner{m: make(map[string]string, 64)} }

func (in *interner) string(b []byte) string {
	if in == nil || in.m == nil || len(b) > internMaxLen {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(in.m) < internMaxEntries {
		in.m[s] = s
	}
	return s
}

// field is string for the value of field f: the previous value of f when
// b equals it.
func (in *interner) field(f int, b []byte) string {
	if in == nil {
		return string(b)
	}
	if p := in.last[f]; len(p) == len(b) && p == string(b) {
		return p
	}
	s := in.string(b)
	in.last[f] = s
	return s
}

// scratchBuf is the reusable buffer for escaped strings (nil: allocate).
func (in *interner) scratchBuf() *[]byte {
	if in == nil {
		return nil
	}
	return &in.scratch
}
