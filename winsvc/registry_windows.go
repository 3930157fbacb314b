package winsvc

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/windows/registry"

	"github.com/netward/netward/agent/config"
)

// machinePolicy reads HKLM\SOFTWARE\Policies\netward.
type machinePolicy struct{}

// SystemPolicy returns the Group Policy registry of this machine, for
// config.ApplyGroupPolicy.
func SystemPolicy() config.Registry { return machinePolicy{} }

func open(subkey string) (registry.Key, error) {
	path := config.PolicyKey
	if subkey != "" {
		path += `\` + strings.ReplaceAll(subkey, ".", `\`)
	}
	return registry.OpenKey(registry.LOCAL_MACHINE, path, registry.QUERY_VALUE|registry.ENUMERATE_SUB_KEYS)
}

func (machinePolicy) ValueNames(subkey string) ([]string, error) {
	k, err := open(subkey)
	if errors.Is(err, registry.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer k.Close()
	return k.ReadValueNames(-1)
}

func (machinePolicy) Value(subkey, name string) (config.RegValue, error) {
	k, err := open(subkey)
	if err != nil {
		return config.RegValue{}, err
	}
	defer k.Close()
	_, typ, err := k.GetValue(name, nil)
	if err != nil {
		return config.RegValue{}, err
	}
	switch typ {
	case registry.SZ, registry.EXPAND_SZ:
		s, _, err := k.GetStringValue(name)
		if err != nil {
			return config.RegValue{}, err
		}
		if typ == registry.EXPAND_SZ {
			if s, err = registry.ExpandString(s); err != nil {
				return config.RegValue{}, err
			}
		}
		return config.RegValue{Kind: config.RegString, Str: s}, nil
	case registry.DWORD, registry.QWORD:
		n, _, err := k.GetIntegerValue(name)
		return config.RegValue{Kind: config.RegDWord, Num: n}, err
	case registry.MULTI_SZ:
		l, _, err := k.GetStringsValue(name)
		return config.RegValue{Kind: config.RegStrings, Strings: l}, err
	}
	return config.RegValue{}, fmt.Errorf("registry type %d is not REG_SZ, REG_DWORD or REG_MULTI_SZ", typ)
}
