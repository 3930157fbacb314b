package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckUserWording: a real agent refuses names no browser would visit,
// and every refusal is in the user's words: no API query syntax, no
// ": bad query" (issue 23).
func TestCheckUserWording(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netward.json")
	sock := filepath.Join(dir, "s.sock")
	if err := os.WriteFile(cfg, []byte(`{"dataDir": "`+dir+`", "indicators": {"source": "builtin:demo"},
		"dns": {"listen": ["127.0.0.1:0"]}, "warn": {"sinkAddress": "127.23.0.156"}, "control": {"socket": "`+sock+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	startAgentChild(t, cfg)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--", "-bad-.example"}, `"-bad-.example" is not a host name, URL or IP address: label "-bad-" of -bad-.example begins or ends with a hyphen`},
		{[]string{"check", ""}, "the name to check is empty; give a host name (example.com), a URL or an IP address"},
		{[]string{"check", "  "}, "the name to check is empty"},
		{[]string{"check", "not a name!"}, `"not a name!" is not a host name, URL or IP address: invalid domain name`},
		{[]string{"bypass", ""}, "the name to bypass is empty"},
	} {
		code, out, errOut := runCLI(t, append(tc.args, "--socket", sock)...)
		if code != ExitUsage || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("netward %q = %d %q %q, want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
		for _, bad := range []string{"bad query", "?q=", "missing"} {
			if strings.Contains(errOut, bad) {
				t.Errorf("netward %q speaks the API's words (%q): %s", tc.args, bad, errOut)
			}
		}
	}
	if code, out, errOut := runCLI(t, "check", "warned.netward.example", "--socket", sock); code != ExitOK || !strings.Contains(out, "action        warn") {
		t.Errorf("check of a good name = %d %q %q", code, out, errOut)
	}
}
