package telemetry

import (
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/netward/netward/internal/jsonbytes"
)

// AppendJSON appends r as one JSON object (no newline) to dst. It produces the
// same fields as encoding/json with Record's tags, but without reflection or
// allocation: it runs once per record on the pipeline's writer goroutine, and
// encoding/json costs several times more (see BenchmarkAppendJSON).
func AppendJSON(dst []byte, r *Record) []byte {
	dst = append(dst, `{"Timestamp":"`...)
	dst = r.Timestamp.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","DeviceId":`...)
	dst = appendString(dst, r.DeviceId)
	dst = append(dst, `,"DeviceName":`...)
	dst = appendString(dst, r.DeviceName)
	dst = append(dst, `,"ActionType":`...)
	dst = appendString(dst, r.ActionType)
	dst = optString(dst, `,"RemoteIP":`, r.RemoteIP)
	dst = optInt(dst, `,"RemotePort":`, int64(r.RemotePort))
	dst = optString(dst, `,"RemoteUrl":`, r.RemoteUrl)
	dst = optString(dst, `,"LocalIP":`, r.LocalIP)
	dst = optInt(dst, `,"LocalPort":`, int64(r.LocalPort))
	dst = optString(dst, `,"Protocol":`, r.Protocol)
	dst = optInt(dst, `,"BytesSent":`, r.BytesSent)
	dst = optInt(dst, `,"BytesReceived":`, r.BytesReceived)
	dst = optInt(dst, `,"InitiatingProcessId":`, int64(r.InitiatingProcessId))
	dst = optString(dst, `,"InitiatingProcessFileName":`, r.InitiatingProcessFileName)
	dst = optString(dst, `,"InitiatingProcessAccountName":`, r.InitiatingProcessAccountName)
	dst = optString(dst, `,"IndicatorId":`, r.IndicatorId)
	dst = optString(dst, `,"Application":`, r.Application)
	dst = optString(dst, `,"Source":`, r.Source)
	dst = optInt(dst, `,"RepeatCount":`, r.RepeatCount)
	dst = optString(dst, `,"Resolver":`, r.Resolver)
	dst = optInt(dst, `,"LostRecords":`, r.LostRecords)
	dst = optString(dst, `,"GapReason":`, r.GapReason)
	if r.PolicySequence != 0 {
		dst = strconv.AppendUint(append(dst, `,"PolicySequence":`...), r.PolicySequence, 10)
	}
	dst = optString(dst, `,"PolicyVersion":`, r.PolicyVersion)
	if !r.PolicyFreshAt.IsZero() {
		dst = append(dst, `,"PolicyFreshAt":"`...)
		dst = append(r.PolicyFreshAt.UTC().AppendFormat(dst, time.RFC3339Nano), '"')
	}
	if r.ActionType == DeviceInfo {
		dst = appendDeviceInfo(dst, r)
	}
	return append(dst, '}')
}

// appendDeviceInfo appends the machine record's fields (rare: at start,
// hourly and on change, so the loops here cost nothing per transaction).
func appendDeviceInfo(dst []byte, r *Record) []byte {
	dst = optString(dst, `,"OSPlatform":`, r.OSPlatform)
	dst = optString(dst, `,"OSVersion":`, r.OSVersion)
	dst = optString(dst, `,"AgentVersion":`, r.AgentVersion)
	if len(r.IPAddresses) > 0 {
		dst = append(dst, `,"IPAddresses":[`...)
		for i, a := range r.IPAddresses {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"Interface":`...)
			dst = appendString(dst, a.Interface)
			dst = append(dst, `,"Address":`...)
			dst = appendString(dst, a.Address)
			dst = optString(dst, `,"Mac":`, a.Mac)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if len(r.LoggedOnUsers) > 0 {
		dst = append(dst, `,"LoggedOnUsers":[`...)
		for i, u := range r.LoggedOnUsers {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, u)
		}
		dst = append(dst, ']')
	}
	return dst
}

func optString(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(append(dst, key...), v)
}

func optInt(dst []byte, key string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), v, 10)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string (RFC 8259 §7). Invalid UTF-8 is
// replaced by U+FFFD, as encoding/json does, so every line stays valid JSON.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none needs a look (most names and
		// ids are plain ASCII; the byte loop was ~2 % of the agent under a
		// flood of blocked answers, issue 21).
		for i+8 <= len(s) && jsonbytes.Plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
