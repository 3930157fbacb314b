package config

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/windows/registry"
)

// machineID reads HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid (the
// 64-bit view, whatever the process's bitness).
func machineID() ([]byte, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Cryptography`, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if err != nil {
		return nil, fmt.Errorf("no machine id: %w", err)
	}
	defer k.Close()
	v, _, err := k.GetStringValue("MachineGuid")
	if err != nil {
		return nil, fmt.Errorf("no machine id: MachineGuid: %w", err)
	}
	return parseMachineGUID(v)
}

func parseMachineGUID(v string) ([]byte, error) {
	v = strings.ToLower(strings.Trim(strings.TrimSpace(v), "{}"))
	if len(v) != 36 {
		return nil, errors.New("MachineGuid is not a GUID")
	}
	return []byte(v), nil
}
