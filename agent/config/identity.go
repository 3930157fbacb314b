package config

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// identityAppID is netward's application id for deriving the device id
// from the machine id. The machine id must not leave the machine as is
// (machine-id(5)): like sd_id128_get_machine_app_specific(3), the device id
// is HMAC-SHA256(key = machine id, message = this app id), first 16 bytes,
// marked as a version 4 UUID. Changing this value changes every device id.
var identityAppID = [16]byte{0x6e, 0x65, 0x74, 0x77, 0x61, 0x72, 0x64, 0x2d, 0xd3, 0x1f, 0x4a, 0x8c, 0x97, 0x02, 0x5b, 0xe1}

// AppSpecificID derives the device id from raw machine id bytes.
func AppSpecificID(machineID []byte) string {
	m := hmac.New(sha256.New, machineID)
	m.Write(identityAppID[:])
	sum := m.Sum(nil)[:16]
	sum[6] = sum[6]&0x0f | 0x40 // version 4
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	return hex.EncodeToString(sum)
}

// MachineDeviceID is the device id derived from this machine's id
// (/etc/machine-id on Linux, MachineGuid on Windows): stable across a wiped
// data directory and a reinstall of netward, different per machine.
func MachineDeviceID() (string, error) {
	raw, err := machineID()
	if err != nil {
		return "", err
	}
	return AppSpecificID(raw), nil
}

// ResolveIdentity replaces device.id and device.name "auto" with their
// values, so events, status, telemetry and enrollment all show the same
// id. Without a machine id (a container without /etc/machine-id) the id
// is random and kept in the data directory, as before.
func ResolveIdentity(cfg *Config) error {
	if cfg.Device.ID == "" || cfg.Device.ID == "auto" {
		id, err := MachineDeviceID()
		if err != nil {
			dir := filepath.Join(cfg.DataDir, "telemetry")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("device id: no machine id, and %w", err)
			}
			b, err := ReadOrCreateSecret(filepath.Join(dir, "device-id"), 16)
			if err != nil {
				return fmt.Errorf("device id: %w", err)
			}
			id = hex.EncodeToString(b)
		}
		cfg.Device.ID = id
	}
	if cfg.Device.Name == "" || cfg.Device.Name == "auto" {
		if h, err := os.Hostname(); err == nil {
			cfg.Device.Name = h
		}
	}
	return nil
}

// ReadOrCreateSecret returns the n random bytes kept in path (the device id
// of a machine without a machine id, the telemetry pseudonyms' salt),
// creating them 0600 the first time.
func ReadOrCreateSecret(path string, n int) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) == n {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	b = make([]byte, n)
	_, _ = rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w (check dataDir permissions)", path, err)
	}
	return b, nil
}
