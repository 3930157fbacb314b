package telemetry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
)

// Privacy selects which identifying fields leave the device (CONTRACT §4
// telemetry.privacy).
type Privacy int

const (
	// PrivacyFull sends every field.
	PrivacyFull Privacy = iota
	// PrivacyNoProcess removes InitiatingProcessId, InitiatingProcessFileName
	// and InitiatingProcessAccountName.
	PrivacyNoProcess
	// PrivacyPseudonymous replaces DeviceName and InitiatingProcessAccountName
	// with HMAC-SHA256(tenant salt, value): the console can still count and
	// correlate users and devices, but cannot read their names without the salt.
	PrivacyPseudonymous
)

// ParsePrivacy reads the config value "full", "noProcess" or "pseudonymous".
func ParsePrivacy(s string) (Privacy, error) {
	switch s {
	case "", "full":
		return PrivacyFull, nil
	case "noProcess":
		return PrivacyNoProcess, nil
	case "pseudonymous":
		return PrivacyPseudonymous, nil
	}
	return 0, fmt.Errorf("telemetry privacy %q is not one of full, noProcess, pseudonymous", s)
}

// pseudonymizer hashes names with a keyed HMAC. It caches the last few results
// because a device has one name and few users, so hashing stays off the
// per-record cost. Not safe for concurrent use (the writer goroutine owns it).
type pseudonymizer struct {
	mac   hash.Hash
	cache map[string]string
}

func newPseudonymizer(salt []byte) *pseudonymizer {
	return &pseudonymizer{mac: hmac.New(sha256.New, salt), cache: make(map[string]string)}
}

// hash returns "h:" and the first 128 bits of HMAC-SHA256(salt, v) in hex.
// The prefix tells a reader that the value is a pseudonym, not a name.
func (p *pseudonymizer) hash(v string) string {
	if v == "" {
		return ""
	}
	if h, ok := p.cache[v]; ok {
		return h
	}
	p.mac.Reset()
	p.mac.Write([]byte(v))
	sum := p.mac.Sum(nil)
	h := "h:" + hex.EncodeToString(sum[:16])
	if len(p.cache) >= 1024 { // bounded: a flood of distinct names cannot grow it
		clear(p.cache)
	}
	p.cache[v] = h
	return h
}

// apply rewrites r in place according to the privacy level.
func applyPrivacy(r *Record, level Privacy, ps *pseudonymizer) {
	switch level {
	case PrivacyNoProcess:
		r.InitiatingProcessId = 0
		r.InitiatingProcessFileName = ""
		r.InitiatingProcessAccountName = ""
		r.LoggedOnUsers = nil // who is signed in is as personal as who ran a process
	case PrivacyPseudonymous:
		r.DeviceName = ps.hash(r.DeviceName)
		r.InitiatingProcessAccountName = ps.hash(r.InitiatingProcessAccountName)
		if len(r.LoggedOnUsers) > 0 {
			// A copy: the slice may be shared with other sinks (events ring).
			users := make([]string, len(r.LoggedOnUsers))
			for i, u := range r.LoggedOnUsers {
				users[i] = ps.hash(u)
			}
			r.LoggedOnUsers = users
		}
	}
}
