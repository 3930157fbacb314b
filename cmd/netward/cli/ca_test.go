package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/agent/warnpage"
)

func caRunCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, args)
	return code, out.String(), errb.String()
}

func TestCAExport(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "netward.json")
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(cfgPath, []byte(`{"version":1,"dataDir":"`+data+`","warn":{"localCA":true}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// No CA yet: exit 1 with a hint.
	code, _, stderr := caRunCLI("ca", "export", "--config", cfgPath)
	if code != ExitFailed || !strings.Contains(stderr, "localCA") {
		t.Errorf("without a CA: exit %d, stderr %q", code, stderr)
	}
	ca, err := warnpage.LoadOrCreateCA(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := caRunCLI("ca", "export", "--config", cfgPath)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	blk, _ := pem.Decode([]byte(stdout))
	if blk == nil {
		t.Fatalf("output is not PEM: %q", stdout)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !cert.Equal(ca.Certificate()) {
		t.Errorf("exported certificate differs from the CA: %v", err)
	}
	if strings.Contains(stdout, "PRIVATE") {
		t.Error("export leaked the private key")
	}
	if code, _, _ := caRunCLI("ca", "import"); code != ExitUsage {
		t.Errorf("ca import: exit %d, want %d", code, ExitUsage)
	}
}
