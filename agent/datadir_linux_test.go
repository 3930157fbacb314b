package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/internal/e2e"
)

// TestRunRefusesForeignDataDir: a data directory another user (uid 65534)
// created before the agent — the race of issue 20 #6 in a sticky parent the
// permission check accepts — is refused before any store in it is read.
func TestRunRefusesForeignDataDir(t *testing.T) {
	e2e.Require(t)
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`{"version":1,"dataDir":%q,"device":{"id":"dev-1"},"control":{"socket":%q},"dns":{"listen":["127.0.0.1:0"]}}`,
		data, filepath.Join(tmp, "run", "netward.sock"))), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.tel.noFlows = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = a.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Run on a data directory owned by uid 65534 = %v, want refused", err)
	}
	if _, err := os.Stat(filepath.Join(data, "bypass.db")); err == nil {
		t.Error("the agent wrote into the foreign data directory")
	}
}
