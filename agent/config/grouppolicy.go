package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PolicyKey is the registry key whose values override the config file
// (CONTRACT §4). Group Policy writes it from the ADMX templates in
// deploy/windows/.
const PolicyKey = `SOFTWARE\Policies\netward`

// RegKind is a registry value type.
type RegKind int

const (
	RegString  RegKind = iota + 1 // REG_SZ / REG_EXPAND_SZ
	RegDWord                      // REG_DWORD (REG_QWORD is read as well)
	RegStrings                    // REG_MULTI_SZ
)

func (k RegKind) String() string {
	switch k {
	case RegString:
		return "REG_SZ"
	case RegDWord:
		return "REG_DWORD"
	case RegStrings:
		return "REG_MULTI_SZ"
	}
	return "unknown"
}

// RegValue is one registry value as read.
type RegValue struct {
	Kind    RegKind
	Str     string
	Num     uint64
	Strings []string
}

// Registry reads the policy key. Subkey "" is the policy key itself; other
// subkeys are named after the config sections ("dns", "indicators", ...).
type Registry interface {
	// ValueNames lists the values under subkey; a missing subkey is no error
	// and no names.
	ValueNames(subkey string) ([]string, error)
	// Value reads one value.
	Value(subkey, name string) (RegValue, error)
}

// GroupPolicy is one setting Group Policy may set: the config key it overrides
// (CONTRACT §4, dotted), the registry value holding it, and how to apply it.
type GroupPolicy struct {
	Key   string // config key, e.g. "dns.capture"
	Kind  RegKind
	apply func(c *Config, v RegValue) error
}

// Subkey and ValueName give the registry location of p: the config key's
// section is the subkey under PolicyKey and its last part the value name, so
// "dns.capture" is HKLM\SOFTWARE\Policies\netward\dns, value "capture", and
// "mode" is the value "mode" of the policy key itself.
func (p GroupPolicy) Subkey() string {
	if i := strings.LastIndexByte(p.Key, '.'); i >= 0 {
		return p.Key[:i]
	}
	return ""
}

// ValueName is the registry value name of p.
func (p GroupPolicy) ValueName() string { return p.Key[strings.LastIndexByte(p.Key, '.')+1:] }

// Path is the full registry path of p, for messages and docs.
func (p GroupPolicy) Path() string {
	k := `HKLM\` + PolicyKey
	if s := p.Subkey(); s != "" {
		k += `\` + strings.ReplaceAll(s, ".", `\`)
	}
	return k + `\` + p.ValueName()
}

func str(set func(c *Config, s string)) func(*Config, RegValue) error {
	return func(c *Config, v RegValue) error { set(c, v.Str); return nil }
}

func boolean(set func(c *Config, b bool)) func(*Config, RegValue) error {
	return func(c *Config, v RegValue) error {
		if v.Num > 1 {
			return fmt.Errorf("%d is not 0 (off) or 1 (on)", v.Num)
		}
		set(c, v.Num == 1)
		return nil
	}
}

func integer(max uint64, set func(c *Config, n int64)) func(*Config, RegValue) error {
	return func(c *Config, v RegValue) error {
		if v.Num > max {
			return fmt.Errorf("%d is larger than %d", v.Num, max)
		}
		set(c, int64(v.Num))
		return nil
	}
}

// unexportedKeys are the config keys without a policy (see GroupPolicies).
var unexportedKeys = []string{"version", "dataDir", "control.socket", "dns.udpSockets"}

func duration(set func(c *Config, d Duration)) func(*Config, RegValue) error {
	return func(c *Config, v RegValue) error {
		d, err := time.ParseDuration(v.Str)
		if err != nil {
			return fmt.Errorf("%q is not a duration like \"1h\" or \"90s\"", v.Str)
		}
		set(c, Duration(d))
		return nil
	}
}

// GroupPolicies is every setting Group Policy can override, in ADMX order. Keys
// left out on purpose (unexportedKeys): version (fixed), dataDir and
// control.socket (moving them needs a matching service unit/ACL, so they stay
// with the file), dns.udpSockets (SO_REUSEPORT sockets are Linux's; Windows
// always opens one).
var GroupPolicies = []GroupPolicy{
	{"mode", RegString, str(func(c *Config, s string) { c.Mode = s })},
	{"device.id", RegString, str(func(c *Config, s string) { c.Device.ID = s })},
	{"device.name", RegString, str(func(c *Config, s string) { c.Device.Name = s })},
	{"indicators.source", RegString, str(func(c *Config, s string) { c.Indicators.Source = s })},
	{"indicators.tokenFile", RegString, str(func(c *Config, s string) { c.Indicators.TokenFile = s })},
	{"indicators.publicKey", RegString, str(func(c *Config, s string) { c.Indicators.PublicKey = s })},
	{"indicators.caFile", RegString, str(func(c *Config, s string) { c.Indicators.CAFile = s })},
	{"indicators.longPollSeconds", RegDWord, integer(3600, func(c *Config, n int64) { c.Indicators.LongPollSeconds = int(n) })},
	{"indicators.maxAgeHours", RegDWord, integer(8784, func(c *Config, n int64) { c.Indicators.MaxAgeHours = int(n) })},
	{"indicators.maxDropPercent", RegDWord, integer(100, func(c *Config, n int64) { p := int(n); c.Indicators.MaxDropPercent = &p })},
	{"indicators.allowDefaultRoute", RegDWord, boolean(func(c *Config, b bool) { c.Indicators.AllowDefaultRoute = b })},
	{"dns.capture", RegDWord, boolean(func(c *Config, b bool) { c.DNS.Capture = b })},
	{"dns.listen", RegStrings, func(c *Config, v RegValue) error { c.DNS.Listen = slices.Clone(v.Strings); return nil }},
	{"dns.upstreams", RegStrings, func(c *Config, v RegValue) error { c.DNS.Upstreams = slices.Clone(v.Strings); return nil }},
	{"dns.blockAnswer", RegString, str(func(c *Config, s string) { c.DNS.BlockAnswer = s })},
	{"dns.syntheticTtlSeconds", RegDWord, integer(86400, func(c *Config, n int64) { c.DNS.SyntheticTTLSeconds = int(n) })},
	{"dns.stripEch", RegDWord, boolean(func(c *Config, b bool) { c.DNS.StripECH = &b })},
	{"sni.enabled", RegDWord, boolean(func(c *Config, b bool) { c.SNI.Enabled = b })},
	{"sni.quic", RegString, str(func(c *Config, s string) { c.SNI.QUIC = s })},
	{"sni.failClosed", RegDWord, boolean(func(c *Config, b bool) { c.SNI.FailClosed = b })},
	{"sni.proxyPorts", RegStrings, func(c *Config, v RegValue) error {
		// A GPO list box holds text: one port a line.
		ports := make([]int, 0, len(v.Strings))
		for _, line := range v.Strings {
			n, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				return fmt.Errorf("%q is not a port number (one port a line, like 3128)", line)
			}
			ports = append(ports, n)
		}
		c.SNI.ProxyPorts = ports
		return nil
	}},
	{"warn.sinkAddress", RegString, str(func(c *Config, s string) { c.Warn.SinkAddress = s })},
	{"warn.localCA", RegDWord, boolean(func(c *Config, b bool) { c.Warn.LocalCA = b })},
	{"telemetry.endpoint", RegString, str(func(c *Config, s string) { c.Telemetry.Endpoint = s })},
	{"telemetry.chunkBytes", RegDWord, integer(math.MaxInt32, func(c *Config, n int64) { c.Telemetry.ChunkBytes = n })},
	{"telemetry.chunkRecords", RegDWord, integer(math.MaxInt32, func(c *Config, n int64) { c.Telemetry.ChunkRecords = int(n) })},
	{"telemetry.chunkInterval", RegString, duration(func(c *Config, d Duration) { c.Telemetry.ChunkInterval = d })},
	{"telemetry.spoolBytes", RegDWord, integer(math.MaxUint32, func(c *Config, n int64) { c.Telemetry.SpoolBytes = n })},
	{"telemetry.privacy", RegString, str(func(c *Config, s string) { c.Telemetry.Privacy = s })},
	{"telemetry.dnsAnswers", RegDWord, boolean(func(c *Config, b bool) { c.Telemetry.DNSAnswers = &b })},
	{"telemetry.dedupWindow", RegString, duration(func(c *Config, d Duration) { c.Telemetry.DedupWindow = &d })},
	{"telemetry.machineInterval", RegString, duration(func(c *Config, d Duration) { c.Telemetry.MachineInterval = d })},
	{"telemetry.ownTraffic", RegDWord, boolean(func(c *Config, b bool) { c.Telemetry.OwnTraffic = b })},
	{"metrics.listen", RegString, str(func(c *Config, s string) { c.Metrics.Listen = s })},
}

// ApplyGroupPolicy overrides cfg with the values set under the policy key and
// validates the result. A nil Registry (no policy support on this OS) changes
// nothing. Unknown value names and values of the wrong type are errors that
// name the registry path, like unknown keys in the config file: a typo in a
// GPO must not be silently ignored. It returns the config keys it applied.
func ApplyGroupPolicy(cfg *Config, reg Registry) ([]string, error) {
	if reg == nil {
		return nil, nil
	}
	bySubkey := map[string]map[string]GroupPolicy{}
	var subkeys []string
	for _, p := range GroupPolicies {
		sk := p.Subkey()
		if bySubkey[sk] == nil {
			bySubkey[sk] = map[string]GroupPolicy{}
			subkeys = append(subkeys, sk)
		}
		bySubkey[sk][strings.ToLower(p.ValueName())] = p
	}
	var applied []string
	var errs []error
	for _, sk := range subkeys {
		names, err := reg.ValueNames(sk)
		if err != nil {
			return nil, fmt.Errorf("read Group Policy key %s: %w", keyPath(sk), err)
		}
		slices.Sort(names)
		for _, name := range names {
			// Registry value names are case-insensitive.
			p, ok := bySubkey[sk][strings.ToLower(name)]
			if !ok {
				if name == "" {
					continue // the key's (Default) value, written by some tools
				}
				errs = append(errs, fmt.Errorf("%s\\%s: unknown policy value; see docs/service.md for the values netward reads", keyPath(sk), name))
				continue
			}
			v, err := reg.Value(sk, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.Path(), err))
				continue
			}
			if v.Kind != p.Kind {
				errs = append(errs, fmt.Errorf("%s: is %s, want %s", p.Path(), v.Kind, p.Kind))
				continue
			}
			if err := p.apply(cfg, v); err != nil {
				errs = append(errs, fmt.Errorf("%s (config key %q): %w", p.Path(), p.Key, err))
				continue
			}
			applied = append(applied, p.Key)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("group policy: %w; fix or remove these values (gpedit.msc, Computer Configuration > Administrative Templates > netward)", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config after applying group policy %v: %w", applied, err)
	}
	return applied, nil
}

func keyPath(subkey string) string {
	if subkey == "" {
		return `HKLM\` + PolicyKey
	}
	return `HKLM\` + PolicyKey + `\` + subkey
}
