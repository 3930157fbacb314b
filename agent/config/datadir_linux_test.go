package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/internal/e2e"
)

// TestSecureDataDir: the data directory is created 0700; one that a real
// other user (uid 65534) created first in a sticky world-writable parent,
// a symlink, a group-writable directory, and a store file planted by that
// user are refused (issue 20 #6).
func TestSecureDataDir(t *testing.T) {
	e2e.Require(t) // files owned by another uid need root
	tmp := t.TempDir()
	sticky := filepath.Join(tmp, "tmp")
	if err := os.Mkdir(sticky, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}

	fresh := filepath.Join(sticky, "fresh", "data")
	if err := SecureDataDir(fresh); err != nil {
		t.Fatalf("new data directory: %v", err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created data directory: %v %v, want mode 0700", fi.Mode(), err)
	}
	if err := SecureDataDir(fresh); err != nil {
		t.Errorf("second start on our own directory: %v", err)
	}

	// The race: the user creates the directory before netward does.
	planted := filepath.Join(sticky, "raced")
	if err := os.Mkdir(planted, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(planted, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := SecureDataDir(planted); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("directory created by uid 65534: %v, want refused", err)
	}

	link := filepath.Join(sticky, "link")
	if err := os.Symlink(fresh, link); err != nil {
		t.Fatal(err)
	}
	if err := SecureDataDir(link); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlinked data directory: %v, want refused", err)
	}

	open := filepath.Join(tmp, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := SecureDataDir(open); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("group-writable data directory: %v, want refused", err)
	}

	// A planted store in our own directory: an indicators.db holding an
	// unsigned set would be restored at start.
	db := filepath.Join(fresh, "indicators.db")
	if err := os.WriteFile(db, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(db, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := SecureDataDir(fresh); err == nil || !strings.Contains(err.Error(), "indicators.db in the data directory is owned by uid 65534") {
		t.Errorf("planted indicators.db: %v, want refused", err)
	}
	if err := os.Chown(db, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := SecureDataDir(fresh); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable indicators.db: %v, want refused", err)
	}
}
