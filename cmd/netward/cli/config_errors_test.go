package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunConfigErrors: config errors name the key by its whole path, a bad
// duration names its key, an empty file says it is empty, and none speaks
// Go (issue 23).
func TestRunConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"dns": {"captur": true}}`, `unknown key "dns.captur"; the README's Configuration section lists every key`},
		{`{"telemetry": {"chunkInterval": "soon"}}`, `key "telemetry.chunkInterval": "soon" is not a duration like "1h" or "90s"`},
		{``, "the file is empty; a config file holds one JSON object"},
		{`{"telemetry": {"chunkBytes": "4M"}}`, `key "telemetry.chunkBytes" is a string; want a whole number`},
	} {
		path := filepath.Join(t.TempDir(), "netward.json")
		if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI(t, "run", "--config", path)
		if code != ExitFailed || !strings.Contains(errOut, tc.want) {
			t.Errorf("run with %q = %d %q, want %q", tc.body, code, errOut, tc.want)
		}
		for _, goWords := range []string{"EOF", "int64", "float64", "Go struct"} {
			if strings.Contains(errOut, goWords) {
				t.Errorf("run with %q speaks Go (%s): %s", tc.body, goWords, errOut)
			}
		}
	}
}
