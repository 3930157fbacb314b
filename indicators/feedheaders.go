package indicators

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CONTRACT §5 headers besides Netward-Signature: the console's freshness
// proof, sent with every 200 and 304, and the agent's check-in, sent with
// every feed request. Both the agent (indicators.Sync) and the console's
// feed publisher use these, so the two ends cannot drift apart.
const (
	FreshnessHeader = "Netward-Freshness"
	AgentHeader     = "Netward-Agent"
)

// Freshness is a parsed Netward-Freshness value:
// "seq=N;at=<RFC 3339>;ed25519=<base64 signature of "N|version|at">".
// The version is not in the header: it is the version the response stands
// for (the body's on a 200, the If-None-Match the agent sent on a 304), so a
// proof for one set cannot be replayed for another.
type Freshness struct {
	Seq uint64
	At  time.Time
	// at is the timestamp exactly as signed; re-formatting At could change
	// its bytes (fractional seconds, offsets) and break the signature.
	at  string
	Sig []byte
}

// SignFreshness makes the freshness proof for (seq, version) at time at.
// The time is written in UTC with second precision.
func SignFreshness(key ed25519.PrivateKey, seq uint64, version string, at time.Time) Freshness {
	raw := at.UTC().Truncate(time.Second).Format(time.RFC3339)
	t, _ := time.Parse(time.RFC3339, raw)
	return Freshness{Seq: seq, At: t, at: raw, Sig: ed25519.Sign(key, freshnessMessage(seq, version, raw))}
}

func freshnessMessage(seq uint64, version, at string) []byte {
	return []byte(strconv.FormatUint(seq, 10) + "|" + version + "|" + at)
}

// String is the header value.
func (f Freshness) String() string {
	at := f.at
	if at == "" {
		at = f.At.UTC().Format(time.RFC3339)
	}
	return "seq=" + strconv.FormatUint(f.Seq, 10) + ";at=" + at + ";ed25519=" + base64.StdEncoding.EncodeToString(f.Sig)
}

// ErrFreshness is wrapped by every freshness parse or verification error.
var ErrFreshness = errors.New("Netward-Freshness header")

// ParseFreshness reads a Netward-Freshness header value. Parameters may come
// in any order, separated by ";" with optional spaces; unknown parameters are
// ignored (forward compatible); seq, at and ed25519 are required.
func ParseFreshness(h string) (Freshness, error) {
	var f Freshness
	var haveSeq, haveSig bool
	params, err := headerParams(h)
	if err != nil {
		return f, fmt.Errorf("%w %q: %v", ErrFreshness, h, err)
	}
	for k, v := range params {
		switch k {
		case "seq":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return f, fmt.Errorf("%w %q: seq %q is not a non-negative integer", ErrFreshness, h, v)
			}
			f.Seq, haveSeq = n, true
		case "at":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, fmt.Errorf("%w %q: at %q is not an RFC 3339 time", ErrFreshness, h, v)
			}
			f.At, f.at = t, v
		case "ed25519":
			sig, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(sig) != ed25519.SignatureSize {
				return f, fmt.Errorf("%w %q: ed25519 is not a base64 %d-byte signature", ErrFreshness, h, ed25519.SignatureSize)
			}
			f.Sig, haveSig = sig, true
		}
	}
	switch {
	case !haveSeq:
		return f, fmt.Errorf("%w %q: seq missing", ErrFreshness, h)
	case f.at == "":
		return f, fmt.Errorf("%w %q: at missing", ErrFreshness, h)
	case !haveSig:
		return f, fmt.Errorf("%w %q: ed25519 missing", ErrFreshness, h)
	}
	return f, nil
}

// Verify checks the proof for the set version with the console's key.
func (f Freshness) Verify(pub ed25519.PublicKey, version string) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key has %d bytes; want %d", ErrFreshness, len(pub), ed25519.PublicKeySize)
	}
	at := f.at
	if at == "" {
		at = f.At.UTC().Format(time.RFC3339)
	}
	if !ed25519.Verify(pub, freshnessMessage(f.Seq, version, at), f.Sig) {
		return fmt.Errorf("%w: signature does not match seq %d, version %q, at %s", ErrFreshness, f.Seq, version, at)
	}
	return nil
}

// AgentInfo is a parsed Netward-Agent check-in header:
// "version=<agent version>; os=<platform>/<os version>; seq=<sequence held>".
type AgentInfo struct {
	Version   string // agent version, e.g. "1.4.0" or "dev"
	Platform  string // GOOS-style platform: "linux", "windows"
	OSVersion string // e.g. "Debian GNU/Linux 12 (bookworm)" or "10.0.22631"
	Seq       uint64 // feed sequence the agent holds (0: none yet)
}

// String is the header value. Values are sanitised so the header always
// parses back and stays a valid HTTP field value: ";" and control
// characters become spaces, non-ASCII characters "?".
func (a AgentInfo) String() string {
	return "version=" + headerValue(a.Version) + "; os=" + headerValue(a.Platform) + "/" + headerValue(a.OSVersion) +
		"; seq=" + strconv.FormatUint(a.Seq, 10)
}

// ParseAgentInfo reads a Netward-Agent header value. Unknown parameters are
// ignored; a missing seq reads as 0 (an agent that holds no set yet).
func ParseAgentInfo(h string) (AgentInfo, error) {
	var a AgentInfo
	params, err := headerParams(h)
	if err != nil {
		return a, fmt.Errorf("%s header %q: %v", AgentHeader, h, err)
	}
	for k, v := range params {
		switch k {
		case "version":
			a.Version = headerValue(v)
		case "os":
			p, o, _ := strings.Cut(v, "/")
			a.Platform, a.OSVersion = headerValue(p), headerValue(o)
		case "seq":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return a, fmt.Errorf("%s header %q: seq %q is not a non-negative integer", AgentHeader, h, v)
			}
			a.Seq = n
		}
	}
	if a.Version == "" {
		return a, fmt.Errorf("%s header %q: version missing", AgentHeader, h)
	}
	return a, nil
}

// maxHeaderParams bounds the work a hostile header can cause.
const maxHeaderParams = 16

// headerParams splits "k=v; k=v" into a map; keys are lowercased, values
// trimmed. A repeated key, an empty key or too many parameters is an error.
func headerParams(h string) (map[string]string, error) {
	if len(h) > 1024 {
		return nil, errors.New("longer than 1024 bytes")
	}
	out := map[string]string{}
	for part := range strings.SplitSeq(h, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return nil, fmt.Errorf("parameter %q is not key=value", part)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("parameter %q repeated", k)
		}
		if len(out) == maxHeaderParams {
			return nil, fmt.Errorf("more than %d parameters", maxHeaderParams)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

func headerValue(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		switch {
		case r == ';' || r < 0x20 || r == 0x7f:
			return ' '
		case r > 0x7e:
			return '?'
		}
		return r
	}, s))
}
