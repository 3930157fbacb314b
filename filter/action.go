// Package filter is netward's policy engine: canonical names, the domain-suffix
// trie, the IP prefix table and the precedence rules of CONTRACT §1. It is pure
// (no I/O) and every lookup is allocation-free, because every interceptor (DNS,
// TLS SNI, QUIC, HTTP, IP) calls it on its hot path.
package filter

import (
	"fmt"
	"strings"
)

// Action is what an indicator asks the agent to do. The zero value means "no
// indicator matched". The numeric order is the tie-break order of CONTRACT §1
// (Allowed > Warn > Block > Audit), so a larger value wins a tie on the same value.
type Action uint8

const (
	_       Action = iota // no match
	Audit                 // let through and record
	Block                 // refuse
	Warn                  // refuse unless the user bypassed it
	Allowed               // let through, overriding less specific rules
)

var actionNames = [...]string{"", "Audit", "Block", "Warn", "Allowed"}

// String returns the MDE spelling of the action, or "None" for the zero value.
func (a Action) String() string {
	if a == 0 {
		return "None"
	}
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// MarshalText renders the action as its MDE name so JSON output is readable.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses an MDE action name (see ParseAction).
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ErrRemediate is returned by ParseAction for BlockAndRemediate, which acts on
// files and therefore has no meaning for a network indicator.
var ErrRemediate = fmt.Errorf("action BlockAndRemediate applies to files only; use Block for network indicators")

// ParseAction reads an MDE action name, case-insensitively. AlertAndBlock is read
// as Block and Alert as Audit (CONTRACT §1); "Allow" is accepted as Allowed
// because older MDE exports use it.
func ParseAction(s string) (Action, error) {
	var buf [24]byte
	switch string(lowerKey(s, &buf)) {
	case "allowed", "allow":
		return Allowed, nil
	case "audit", "alert":
		return Audit, nil
	case "warn":
		return Warn, nil
	case "block", "alertandblock":
		return Block, nil
	case "blockandremediate":
		return 0, ErrRemediate
	case "":
		return 0, fmt.Errorf("action is empty; want one of Allowed, Audit, Warn, Block")
	}
	return 0, fmt.Errorf("unknown action %q; want one of Allowed, Audit, Warn, Block", s)
}

// Type is the kind of value an indicator matches.
type Type uint8

const (
	TypeDomain Type = iota // DomainName: the name and every subdomain
	TypeURL                // Url: host (+ path on plain HTTP)
	TypeIP                 // IpAddress: an address or a CIDR prefix
)

var typeNames = [...]string{"DomainName", "Url", "IpAddress"}

// String returns the MDE indicatorType spelling.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// MarshalText renders the type as its MDE name.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText parses an MDE indicator type (see ParseType).
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ErrFileIndicator is returned by ParseType for file-hash and certificate
// indicator types, which netward cannot enforce on the network.
var ErrFileIndicator = fmt.Errorf("file and certificate indicators are not network indicators; netward enforces DomainName, Url and IpAddress only")

// ParseType reads an MDE indicatorType, case-insensitively.
func ParseType(s string) (Type, error) {
	var buf [24]byte
	switch string(lowerKey(s, &buf)) {
	case "domainname", "domain":
		return TypeDomain, nil
	case "url":
		return TypeURL, nil
	case "ipaddress", "ip":
		return TypeIP, nil
	case "filesha1", "filesha256", "filemd5", "certificatethumbprint":
		return 0, ErrFileIndicator
	}
	return 0, fmt.Errorf("unknown indicator type %q; want DomainName, Url or IpAddress", s)
}

// lowerKey trims s and lowercases it into buf without allocating (feeds
// carry a million of these keywords); longer strings, which match no
// keyword anyway, are returned lowercased the ordinary way.
func lowerKey(s string, buf *[24]byte) []byte {
	s = strings.TrimSpace(s)
	if len(s) > len(buf) {
		return []byte(strings.ToLower(s))
	}
	b := buf[:len(s)]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return b
}
