//go:build windows

package hostnet

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// WindowsRegistry is the Registry on HKEY_LOCAL_MACHINE.
type WindowsRegistry struct{}

func (WindowsRegistry) SubKeys(path string) ([]string, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, path, registry.ENUMERATE_SUB_KEYS)
	if errors.Is(err, registry.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer k.Close()
	return k.ReadSubKeyNames(-1)
}

func (WindowsRegistry) CreateKey(path string) error {
	k, _, err := registry.CreateKey(registry.LOCAL_MACHINE, path, registry.SET_VALUE)
	if err != nil {
		return err
	}
	return k.Close()
}

func (WindowsRegistry) open(path string) (registry.Key, error) {
	return registry.OpenKey(registry.LOCAL_MACHINE, path, registry.SET_VALUE)
}

func (r WindowsRegistry) SetString(path, name, value string) error {
	k, err := r.open(path)
	if err != nil {
		return err
	}
	defer k.Close()
	return k.SetStringValue(name, value)
}

func (r WindowsRegistry) SetStrings(path, name string, values []string) error {
	k, err := r.open(path)
	if err != nil {
		return err
	}
	defer k.Close()
	return k.SetStringsValue(name, values)
}

func (r WindowsRegistry) SetDWord(path, name string, value uint32) error {
	k, err := r.open(path)
	if err != nil {
		return err
	}
	defer k.Close()
	return k.SetDWordValue(name, value)
}

func (WindowsRegistry) DeleteKey(path string) error {
	err := registry.DeleteKey(registry.LOCAL_MACHINE, path)
	if errors.Is(err, registry.ErrNotExist) {
		return nil
	}
	return err
}

var (
	dnsapi                = windows.NewLazySystemDLL("dnsapi.dll")
	procFlushResolver     = dnsapi.NewProc("DnsFlushResolverCache")
	userenv               = windows.NewLazySystemDLL("userenv.dll")
	procRefreshPolicyEx   = userenv.NewProc("RefreshPolicyEx")
	errNRPTRefreshMissing = errors.New("nrpt: the Windows API to refresh DNS policy is missing")
)

// RefreshNRPT tells Windows the NRPT changed: a machine policy refresh when
// the rule is under the Group Policy key (RefreshPolicyEx, forced), and a
// resolver cache flush so cached answers from before do not linger.
func RefreshNRPT(gpo bool) error {
	if gpo {
		if err := procRefreshPolicyEx.Find(); err != nil {
			return errNRPTRefreshMissing
		}
		const rpForce = 1
		if r, _, err := procRefreshPolicyEx.Call(1 /* bMachine */, rpForce); r == 0 {
			return fmt.Errorf("nrpt: RefreshPolicyEx: %w", err)
		}
	}
	if err := procFlushResolver.Find(); err != nil {
		return errNRPTRefreshMissing
	}
	_, _, _ = procFlushResolver.Call()
	return nil
}
