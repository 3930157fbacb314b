package hostnet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Windows sends a query to the servers of the most specific Name Resolution
// Policy Table (NRPT) rule matching the name. netward adds one catch-all
// rule (namespace ".") pointing at the proxy, so every name the system
// resolver looks up reaches it. The rule is removed on stop, and a leftover
// of a crashed agent is removed at start.
//
// Two places hold NRPT rules, both under HKEY_LOCAL_MACHINE:
const (
	// NRPTLocalKey holds rules set locally (the DNS Client service's own).
	NRPTLocalKey = `SYSTEM\CurrentControlSet\Services\Dnscache\Parameters\DnsPolicyConfig`
	// NRPTGPOKey holds rules set by Group Policy. When it has any rule, the
	// DNS client ignores the local key entirely, so the rule must go here.
	NRPTGPOKey = `SOFTWARE\Policies\Microsoft\Windows NT\DNSClient\DnsPolicyConfig`
	// NRPTRuleName is netward's rule's subkey; fixed, so leftovers are found.
	NRPTRuleName = `{6e770000-6e77-4e77-8e77-6e6574776172}`
)

// Registry is the part of the Windows registry NRPT needs (paths are under
// HKEY_LOCAL_MACHINE). Production uses x/sys/windows/registry; tests a map.
type Registry interface {
	// SubKeys lists the subkeys of path; a missing path is no error (nil).
	SubKeys(path string) ([]string, error)
	// CreateKey creates path and its missing parents.
	CreateKey(path string) error
	SetString(path, name, value string) error
	SetStrings(path, name string, values []string) error
	SetDWord(path, name string, value uint32) error
	// DeleteKey deletes path (which has no subkeys); missing is no error.
	DeleteKey(path string) error
}

// NRPTConfig configures the rule.
type NRPTConfig struct {
	Registry Registry
	// Servers are the proxy's addresses (Windows queries them on port 53).
	Servers []netip.Addr
	// Refresh tells Windows the rules changed (gpo: the rule is under the
	// Group Policy key). Optional.
	Refresh func(gpo bool) error
}

// NRPT manages netward's catch-all NRPT rule.
type NRPT struct {
	cfg NRPTConfig
	gpo bool // where Install put the rule
}

// NewNRPT checks cfg; it writes nothing.
func NewNRPT(cfg NRPTConfig) (*NRPT, error) {
	if cfg.Registry == nil {
		return nil, errors.New("nrpt: no registry")
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("nrpt: no proxy address; set dns.listen to an address on port 53")
	}
	return &NRPT{cfg: cfg}, nil
}

// gpoOwned reports whether Group Policy owns the NRPT: any rule other than
// netward's under the policy key.
func (n *NRPT) gpoOwned() (bool, error) {
	keys, err := n.cfg.Registry.SubKeys(NRPTGPOKey)
	if err != nil {
		return false, fmt.Errorf("nrpt: read %s: %w", NRPTGPOKey, err)
	}
	return slices.ContainsFunc(keys, func(k string) bool { return !strings.EqualFold(k, NRPTRuleName) }), nil
}

// Install removes leftovers, then writes the rule under the Group Policy key
// when Group Policy owns the NRPT, else under the local key. It returns the
// key it wrote.
func (n *NRPT) Install() (string, error) {
	if err := n.Remove(); err != nil {
		return "", err
	}
	gpo, err := n.gpoOwned()
	if err != nil {
		return "", err
	}
	base := NRPTLocalKey
	if gpo {
		base = NRPTGPOKey
	}
	key := base + `\` + NRPTRuleName
	r := n.cfg.Registry
	servers := make([]string, len(n.cfg.Servers))
	for i, s := range n.cfg.Servers {
		servers[i] = s.String()
	}
	steps := []func() error{
		func() error { return r.CreateKey(key) },
		func() error { return r.SetDWord(key, "Version", 2) },
		// "." is the catch-all namespace: it matches every name.
		func() error { return r.SetStrings(key, "Name", []string{"."}) },
		func() error { return r.SetString(key, "GenericDNSServers", strings.Join(servers, ";")) },
		// 0x8: the rule names generic DNS servers (no DirectAccess, no DNSSEC).
		func() error { return r.SetDWord(key, "ConfigOptions", 8) },
		func() error {
			return r.SetString(key, "Comment", "netward DNS protection; removed by 'netward cleanup'")
		},
		func() error { return r.SetString(key, "DisplayName", "netward") },
		func() error { return r.SetString(key, "IPSECCARestriction", "") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			_ = r.DeleteKey(key)
			return "", fmt.Errorf("nrpt: write %s (run as Administrator/SYSTEM): %w", key, err)
		}
	}
	n.gpo = gpo
	if n.cfg.Refresh != nil {
		if err := n.cfg.Refresh(gpo); err != nil {
			return key, fmt.Errorf("nrpt: rule written to %s but Windows was not told: %w", key, err)
		}
	}
	return key, nil
}

// Remove deletes netward's rule from both keys. Safe to call any time.
func (n *NRPT) Remove() error {
	var errs []error
	for _, base := range []string{NRPTLocalKey, NRPTGPOKey} {
		keys, err := n.cfg.Registry.SubKeys(base)
		if err != nil {
			errs = append(errs, fmt.Errorf("nrpt: read %s: %w", base, err))
			continue
		}
		for _, k := range keys {
			if !strings.EqualFold(k, NRPTRuleName) {
				continue
			}
			if err := n.cfg.Registry.DeleteKey(base + `\` + k); err != nil {
				errs = append(errs, fmt.Errorf("nrpt: delete %s\\%s (run as Administrator/SYSTEM): %w", base, k, err))
				continue
			}
			if n.cfg.Refresh != nil {
				if err := n.cfg.Refresh(base == NRPTGPOKey); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}
