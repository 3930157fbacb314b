package config

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestAppSpecificID(t *testing.T) {
	a := AppSpecificID([]byte{1, 2, 3})
	if a != AppSpecificID([]byte{1, 2, 3}) {
		t.Error("the derivation is not stable")
	}
	if a == AppSpecificID([]byte{1, 2, 4}) {
		t.Error("two machines got one id")
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`).MatchString(a) {
		t.Errorf("AppSpecificID = %q, want 32 hex digits of a version 4 UUID", a)
	}
	if a == "010203" {
		t.Error("the machine id leaks")
	}
}

func TestResolveIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{DataDir: dir, Device: Device{ID: "auto", Name: "auto"}}
	if err := ResolveIdentity(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Device.ID == "auto" || cfg.Device.ID == "" || cfg.Device.Name == "auto" {
		t.Fatalf("unresolved: %+v", cfg.Device)
	}
	// A wiped data directory keeps the id (when the machine has an id).
	if _, err := MachineDeviceID(); err == nil {
		os.RemoveAll(dir)
		again := &Config{DataDir: filepath.Join(t.TempDir(), "new"), Device: Device{ID: "auto"}}
		if err := ResolveIdentity(again); err != nil || again.Device.ID != cfg.Device.ID {
			t.Errorf("after wiping the data dir: %q, %v; want %q", again.Device.ID, err, cfg.Device.ID)
		}
	}
	fixed := &Config{DataDir: dir, Device: Device{ID: "pc-42", Name: "PC 42"}}
	if err := ResolveIdentity(fixed); err != nil || fixed.Device.ID != "pc-42" || fixed.Device.Name != "PC 42" {
		t.Errorf("configured identity changed: %+v %v", fixed.Device, err)
	}
}
