package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// machineIDFiles are read in order (machine-id(5); the D-Bus copy serves
// systems without systemd).
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

func machineID() ([]byte, error) {
	var errs []error
	for _, p := range machineIDFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		id, err := parseMachineID(string(b))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		return id, nil
	}
	return nil, fmt.Errorf("no machine id: %w", errors.Join(errs...))
}

// parseMachineID reads the 32 lowercase hex digits of machine-id(5).
func parseMachineID(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return nil, errors.New("not 32 hex digits")
	}
	if s == strings.Repeat("0", 32) {
		return nil, errors.New("all zero (uninitialised)")
	}
	return b, nil
}
