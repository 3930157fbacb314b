package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeRegistry is a policy key in memory: subkey → value name → value.
type fakeRegistry map[string]map[string]RegValue

func (f fakeRegistry) ValueNames(subkey string) ([]string, error) {
	var names []string
	for n := range f[subkey] {
		names = append(names, n)
	}
	return names, nil
}

func (f fakeRegistry) Value(subkey, name string) (RegValue, error) {
	v, ok := f[subkey][name]
	if !ok {
		return RegValue{}, errors.New("not found")
	}
	return v, nil
}

func baseConfig(t *testing.T) *Config {
	t.Helper()
	c, err := Parse([]byte(`{"version":1,"mode":"block","dns":{"capture":true,"upstreams":["192.0.2.53:53"]}}`), "test.json")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sz(s string) RegValue     { return RegValue{Kind: RegString, Str: s} }
func dw(n uint64) RegValue     { return RegValue{Kind: RegDWord, Num: n} }
func msz(l ...string) RegValue { return RegValue{Kind: RegStrings, Strings: l} }

func TestApplyPolicy(t *testing.T) {
	reg := fakeRegistry{
		"":           {"Mode": sz("audit")}, // value names are case-insensitive
		"dns":        {"capture": dw(0), "upstreams": msz("198.51.100.53:53", "[2001:db8::53]:53"), "stripEch": dw(0)},
		"indicators": {"source": sz("https://console.example/v1/indicators"), "longPollSeconds": dw(120)},
		"sni":        {"enabled": dw(1), "quic": sz("block")},
		"telemetry":  {"chunkInterval": sz("15m"), "spoolBytes": dw(1 << 30), "privacy": sz("pseudonymous")},
		"metrics":    {"listen": sz("127.0.0.1:9153")},
	}
	cfg := baseConfig(t)
	applied, err := ApplyGroupPolicy(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"mode", cfg.Mode, "audit"},
		{"dns.capture", cfg.DNS.Capture, false},
		{"dns.upstreams", strings.Join(cfg.DNS.Upstreams, ","), "198.51.100.53:53,[2001:db8::53]:53"},
		{"dns.stripEch", *cfg.DNS.StripECH, false},
		{"indicators.source", cfg.Indicators.Source, "https://console.example/v1/indicators"},
		{"indicators.longPollSeconds", cfg.Indicators.LongPollSeconds, 120},
		{"sni.enabled", cfg.SNI.Enabled, true},
		{"sni.quic", cfg.SNI.QUIC, "block"},
		{"telemetry.chunkInterval", time.Duration(cfg.Telemetry.ChunkInterval), 15 * time.Minute},
		{"telemetry.spoolBytes", cfg.Telemetry.SpoolBytes, int64(1 << 30)},
		{"telemetry.privacy", cfg.Telemetry.Privacy, "pseudonymous"},
		{"metrics.listen", cfg.Metrics.Listen, "127.0.0.1:9153"},
		// Not set by policy: the file's value stays.
		{"dns.blockAnswer", cfg.DNS.BlockAnswer, "nxdomain"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	if len(applied) != 12 || !slices.Contains(applied, "dns.upstreams") || !slices.Contains(applied, "mode") {
		t.Errorf("applied = %q, want the 12 keys set", applied)
	}
}

func TestApplyPolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		reg  fakeRegistry
		want string
	}{
		{"unknown value", fakeRegistry{"dns": {"captur": dw(1)}}, `HKLM\SOFTWARE\Policies\netward\dns\captur: unknown policy value`},
		{"wrong type", fakeRegistry{"": {"mode": dw(1)}}, `HKLM\SOFTWARE\Policies\netward\mode: is REG_DWORD, want REG_SZ`},
		{"bool out of range", fakeRegistry{"sni": {"enabled": dw(2)}}, `netward\sni\enabled (config key "sni.enabled"): 2 is not 0 (off) or 1 (on)`},
		{"number too large", fakeRegistry{"dns": {"syntheticTtlSeconds": dw(86401)}}, "86401 is larger than 86400"},
		{"bad duration", fakeRegistry{"telemetry": {"chunkInterval": sz("hourly")}}, `"hourly" is not a duration`},
		{"invalid value after overlay", fakeRegistry{"": {"mode": sz("enforce")}}, `key "mode": "enforce" is not one of off, audit, block`},
		{"every error reported", fakeRegistry{"": {"mode": dw(1)}, "sni": {"quic": dw(1)}}, `\sni\quic: is REG_DWORD`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(t)
			_, err := ApplyGroupPolicy(cfg, tt.reg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ApplyGroupPolicy = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestApplyPolicyNil(t *testing.T) {
	cfg := baseConfig(t)
	before := *cfg
	applied, err := ApplyGroupPolicy(cfg, nil)
	if err != nil || applied != nil || cfg.Mode != before.Mode || cfg.DNS.Capture != before.DNS.Capture {
		t.Fatalf("ApplyGroupPolicy(nil) = %v, %v and changed the config", applied, err)
	}
}

// TestPoliciesCoverEveryValue pins the registry location of each policy and
// checks every one can be applied: each key names a config field by its
// CONTRACT §4 spelling.
func TestPoliciesLocation(t *testing.T) {
	tests := []struct{ key, subkey, value, path string }{
		{"mode", "", "mode", `HKLM\SOFTWARE\Policies\netward\mode`},
		{"dns.capture", "dns", "capture", `HKLM\SOFTWARE\Policies\netward\dns\capture`},
		{"indicators.longPollSeconds", "indicators", "longPollSeconds", `HKLM\SOFTWARE\Policies\netward\indicators\longPollSeconds`},
	}
	for _, tt := range tests {
		i := slices.IndexFunc(GroupPolicies, func(p GroupPolicy) bool { return p.Key == tt.key })
		if i < 0 {
			t.Fatalf("no policy for %s", tt.key)
		}
		p := GroupPolicies[i]
		if p.Subkey() != tt.subkey || p.ValueName() != tt.value || p.Path() != tt.path {
			t.Errorf("%s: subkey %q value %q path %q, want %q %q %q", tt.key, p.Subkey(), p.ValueName(), p.Path(), tt.subkey, tt.value, tt.path)
		}
	}
	seen := map[string]bool{}
	for _, p := range GroupPolicies {
		if seen[strings.ToLower(p.Key)] {
			t.Errorf("policy %s listed twice", p.Key)
		}
		seen[strings.ToLower(p.Key)] = true
		// Each policy applies alone to a default config without error for a
		// plausible value of its kind.
		v := map[RegKind]RegValue{RegString: sz("x"), RegDWord: dw(1), RegStrings: msz("192.0.2.1:53")}[p.Kind]
		switch p.Key {
		case "mode":
			v = sz("off")
		case "dns.blockAnswer":
			v = sz("sink")
		case "sni.quic":
			v = sz("allow")
		case "telemetry.privacy":
			v = sz("noProcess")
		case "telemetry.chunkInterval", "telemetry.dedupWindow", "telemetry.machineInterval":
			v = sz("30m")
		case "sni.proxyPorts":
			v = msz("3128", " 8080")
		}
		reg := fakeRegistry{p.Subkey(): {p.ValueName(): v}}
		if applied, err := ApplyGroupPolicy(baseConfig(t), reg); err != nil || !slices.Equal(applied, []string{p.Key}) {
			t.Errorf("policy %s: applied %q, err %v", p.Key, applied, err)
		}
	}
}

// Every config key has a policy, or is one of the keys left out on purpose:
// a key added to the config file is not forgotten in Group Policy.
func TestPoliciesCoverEveryKey(t *testing.T) {
	var keys []string
	var walk func(prefix string, tp reflect.Type)
	walk = func(prefix string, tp reflect.Type) {
		for f := range tp.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
				walk(prefix+name+".", f.Type)
				continue
			}
			keys = append(keys, prefix+name)
		}
	}
	walk("", reflect.TypeFor[Config]())
	if len(keys) < 30 {
		t.Fatalf("found %d config keys: %v", len(keys), keys)
	}
	for _, k := range keys {
		has := slices.ContainsFunc(GroupPolicies, func(p GroupPolicy) bool { return p.Key == k })
		if has == slices.Contains(unexportedKeys, k) {
			t.Errorf("config key %s: has a policy %v, listed as left out %v", k, has, !has)
		}
	}
}

// A list of proxy ports from a policy: one port a line, and a clear error
// for a line that is not one (validation then checks the range).
func TestPolicyProxyPorts(t *testing.T) {
	cfg := baseConfig(t)
	if _, err := ApplyGroupPolicy(cfg, fakeRegistry{"sni": {"proxyPorts": msz("3128", "8080 ")}}); err != nil || !slices.Equal(cfg.SNI.ProxyPorts, []int{3128, 8080}) {
		t.Errorf("proxyPorts = %v, %v", cfg.SNI.ProxyPorts, err)
	}
	for _, bad := range []RegValue{msz("3128", "squid"), msz("70000")} {
		if _, err := ApplyGroupPolicy(baseConfig(t), fakeRegistry{"sni": {"proxyPorts": bad}}); err == nil || !strings.Contains(err.Error(), "proxyPorts") {
			t.Errorf("proxyPorts %v: err %v", bad.Strings, err)
		}
	}
	cfg = baseConfig(t)
	if _, err := ApplyGroupPolicy(cfg, fakeRegistry{"telemetry": {"dedupWindow": sz("0s"), "dnsAnswers": dw(0)}, "indicators": {"maxDropPercent": dw(0)}}); err != nil ||
		cfg.Telemetry.DedupWindow == nil || *cfg.Telemetry.DedupWindow != 0 || cfg.Telemetry.DNSAnswers == nil || *cfg.Telemetry.DNSAnswers || *cfg.Indicators.MaxDropPercent != 0 {
		t.Errorf("zero values from policy: dedup %v answers %v drop %v, %v", cfg.Telemetry.DedupWindow, cfg.Telemetry.DNSAnswers, cfg.Indicators.MaxDropPercent, err)
	}
}
