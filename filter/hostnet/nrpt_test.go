package hostnet

import (
	"errors"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// mapRegistry is an in-memory Registry: keys (case-insensitive) → values.
type mapRegistry struct {
	keys    map[string]map[string]any
	failSet bool
}

func newMapRegistry() *mapRegistry { return &mapRegistry{keys: map[string]map[string]any{}} }

func (m *mapRegistry) SubKeys(path string) ([]string, error) {
	var out []string
	prefix := strings.ToLower(path) + `\`
	for k := range m.keys {
		if rest, ok := strings.CutPrefix(k, prefix); ok && !strings.Contains(rest, `\`) {
			out = append(out, rest)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *mapRegistry) CreateKey(path string) error {
	if _, ok := m.keys[strings.ToLower(path)]; !ok {
		m.keys[strings.ToLower(path)] = map[string]any{}
	}
	return nil
}

func (m *mapRegistry) set(path, name string, v any) error {
	if m.failSet {
		return errors.New("access denied")
	}
	k, ok := m.keys[strings.ToLower(path)]
	if !ok {
		return errors.New("no such key")
	}
	k[name] = v
	return nil
}

func (m *mapRegistry) SetString(p, n, v string) error           { return m.set(p, n, v) }
func (m *mapRegistry) SetStrings(p, n string, v []string) error { return m.set(p, n, v) }
func (m *mapRegistry) SetDWord(p, n string, v uint32) error     { return m.set(p, n, v) }
func (m *mapRegistry) DeleteKey(p string) error                 { delete(m.keys, strings.ToLower(p)); return nil }

func TestNRPT(t *testing.T) {
	proxy := []netip.Addr{netip.MustParseAddr("127.0.0.153"), netip.MustParseAddr("::1")}
	for _, tt := range []struct {
		name     string
		gpoRules []string // existing Group Policy rules
		leftover string   // key holding a leftover netward rule
		wantBase string
	}{
		{"local", nil, "", NRPTLocalKey},
		{"gpo owns nrpt", []string{"{corp-rule}"}, "", NRPTGPOKey},
		{"leftover in local removed", nil, NRPTLocalKey, NRPTLocalKey},
		{"leftover in gpo key alone is not gpo ownership", nil, NRPTGPOKey, NRPTLocalKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newMapRegistry()
			for _, r := range tt.gpoRules {
				_ = reg.CreateKey(NRPTGPOKey + `\` + r)
			}
			if tt.leftover != "" {
				_ = reg.CreateKey(tt.leftover + `\` + NRPTRuleName)
			}
			var refreshed []bool
			n, err := NewNRPT(NRPTConfig{Registry: reg, Servers: proxy, Refresh: func(gpo bool) error { refreshed = append(refreshed, gpo); return nil }})
			if err != nil {
				t.Fatal(err)
			}
			key, err := n.Install()
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.wantBase + `\` + NRPTRuleName; key != want {
				t.Errorf("Install wrote %s, want %s", key, want)
			}
			vals := reg.keys[strings.ToLower(key)]
			want := map[string]any{"Version": uint32(2), "Name": []string{"."}, "GenericDNSServers": "127.0.0.153;::1",
				"ConfigOptions": uint32(8), "DisplayName": "netward", "IPSECCARestriction": "",
				"Comment": "netward DNS protection; removed by 'netward cleanup'"}
			if !reflect.DeepEqual(vals, want) {
				t.Errorf("rule values = %v, want %v", vals, want)
			}
			other := NRPTGPOKey
			if tt.wantBase == NRPTGPOKey {
				other = NRPTLocalKey
			}
			if _, ok := reg.keys[strings.ToLower(other+`\`+NRPTRuleName)]; ok {
				t.Errorf("a netward rule is left in %s", other)
			}
			if len(refreshed) == 0 || refreshed[len(refreshed)-1] != (tt.wantBase == NRPTGPOKey) {
				t.Errorf("refresh calls = %v", refreshed)
			}
			if err := n.Remove(); err != nil {
				t.Fatal(err)
			}
			for k := range reg.keys {
				if strings.Contains(k, strings.ToLower(NRPTRuleName)) {
					t.Errorf("Remove left %s", k)
				}
			}
			for _, r := range tt.gpoRules {
				if _, ok := reg.keys[strings.ToLower(NRPTGPOKey+`\`+r)]; !ok {
					t.Errorf("Remove deleted the organisation's rule %s", r)
				}
			}
		})
	}
}

func TestNRPTWriteFailureLeavesNothing(t *testing.T) {
	reg := newMapRegistry()
	reg.failSet = true
	n, err := NewNRPT(NRPTConfig{Registry: reg, Servers: []netip.Addr{netip.MustParseAddr("127.0.0.153")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Install(); err == nil || !strings.Contains(err.Error(), "Administrator") {
		t.Errorf("Install with a read-only registry = %v, want an error telling to run as Administrator", err)
	}
	if len(reg.keys) != 0 {
		t.Errorf("a half-written rule was left: %v", reg.keys)
	}
}

func TestNRPTConfigErrors(t *testing.T) {
	if _, err := NewNRPT(NRPTConfig{Registry: newMapRegistry()}); err == nil {
		t.Errorf("no servers: want an error")
	}
	if _, err := NewNRPT(NRPTConfig{Servers: []netip.Addr{netip.MustParseAddr("127.0.0.153")}}); err == nil {
		t.Errorf("no registry: want an error")
	}
}
