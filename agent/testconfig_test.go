package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netward/netward/agent/config"
)

// parseConfig parses a test agent's config and, unless the test names a
// control socket, gives it a private one: the default /run/netward/netward.sock
// is the system agent's, and a test agent serving there answers every
// `netward status` on the machine, including other packages' tests running at
// the same time (the CLI's per-user socket test saw this agent instead of its
// own).
func parseConfig(t *testing.T, data []byte, name string) (*config.Config, error) {
	t.Helper()
	cfg, err := config.Parse(data, name)
	if err != nil {
		return nil, err
	}
	def, derr := config.Parse([]byte(`{"version":1}`), "default")
	if derr != nil {
		t.Fatal(derr)
	}
	if cfg.Control.Socket == def.Control.Socket {
		// A short directory of its own: socket paths are limited to 108
		// bytes, and t.TempDir() carries the test's name.
		dir, err := os.MkdirTemp("", "nwctl")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		cfg.Control.Socket = filepath.Join(dir, "netward.sock")
	}
	return cfg, nil
}

// bareAgent is an agent on the default configuration with its own data
// directory, changed by edit (nil: none) before New; nothing is started.
func bareAgent(t *testing.T, edit func(*config.Config)) *Agent {
	t.Helper()
	cfg, err := parseConfig(t, []byte(`{"version":1,"dataDir":"`+t.TempDir()+`"}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
