package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func indRunCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, args)
	return code, out.String(), errb.String()
}

func indTestdata(name string) string {
	return filepath.Join("..", "..", "..", "testdata", "indicators", name)
}

func TestIndicatorsValidate(t *testing.T) {
	problems := indTestdata("mde-problems.csv")
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // each must appear, in order
		stderr   string
		noStdout bool
	}{
		{"csv with problems", []string{"indicators", "validate", problems}, ExitFailed, []string{
			problems + ":2:1 indicatorvalue: error: DomainName \"bad..name.example\"",
			problems + ":3:50 indicatortype: error: indicator type \"FileSha1\"",
			problems + ":4:12 ACTION: error: action BlockAndRemediate applies to files only",
			problems + ":5:13 ACTION: error: unknown action \"Obliterate\"",
			problems + ":6:32 expirationtime: error: expiration time \"next tuesday\"",
			problems + ":8:1: warning: DomainName \"dup.example\" is also listed at " + problems + ":7:1",
			problems + ":9:1 indicatorvalue: error: IpAddress \"256.1.1.1\"",
			problems + " (csv): 2 indicators loaded, 0 expired, 6 errors, 1 warnings (Allowed 1, Block 1)\n",
		}, "", false},
		{"clean csv", []string{"indicators", "validate", indTestdata("mde-import.csv")}, ExitOK, []string{
			"(csv): 5 indicators loaded, 0 expired, 0 errors, 0 warnings (Allowed 1, Warn 1, Block 2, Audit 1)",
		}, "", false},
		{"hosts as warn", []string{"indicators", "validate", "--action", "Warn", indTestdata("stevenblack-excerpt.hosts")}, ExitOK, []string{
			"(hosts): 30 indicators loaded, 0 expired, 0 errors, 0 warnings (Warn 30)",
		}, "", false},
		// Issue 14 §3 and §5: every bad row reported, the good rows kept;
		// a default route and bare addresses in a list called out.
		{"csv with a stray quote", []string{"indicators", "validate", writeTemp(t, "q.csv",
			"IndicatorType,IndicatorValue,Action\nDomainName,a.example,Block\nDomainName,\"oops,Block\nDomainName,b.example,Block\n")}, ExitFailed, []string{
			"q.csv:3:", "the row is skipped",
			"(csv): 2 indicators loaded, 0 expired, 1 errors, 0 warnings (Block 2)",
		}, "", false},
		{"list with a default route", []string{"indicators", "validate", writeTemp(t, "l.txt", "0.0.0.0/0\n::/0\n198.51.100.7\nok.example\n")}, ExitFailed, []string{
			"l.txt:1:1: error: IpAddress \"0.0.0.0/0\" covers every address",
			"l.txt:2:1: error: IpAddress \"::/0\" covers every address",
			"l.txt:3:1: warning: 198.51.100.7 alone on a line is loaded as an IpAddress indicator",
			"(hosts): 2 indicators loaded, 0 expired, 2 errors, 1 warnings (Block 2)",
		}, "", false},
		{"default route allowed explicitly", []string{"indicators", "validate", "--allow-default-route", writeTemp(t, "d.txt", "0.0.0.0/0\n")}, ExitOK, []string{
			"warning: IpAddress \"0.0.0.0/0\" covers every address (allowed by indicators.allowDefaultRoute)",
			"1 indicators loaded, 0 expired, 0 errors, 1 warnings (Block 1)",
		}, "", false},
		{"catalog needs tags", []string{"indicators", "validate", indTestdata("catalog-excerpt.json")}, ExitFailed, nil, "give the tags file too (--tags FILE)", true},
		{"catalog", []string{"indicators", "validate", indTestdata("catalog-excerpt.json"), "--tags", indTestdata("tags.txt")}, ExitOK, []string{
			"[5].domains[1]: warning: \"google.com/drive\" has a path and is not propagated",
		}, "", false},
		{"forced format", []string{"indicators", "validate", "--format", "feed", indTestdata("mde-import.csv")}, ExitFailed, nil, "not a feed document", true},
		{"missing file", []string{"indicators", "validate", "/nonexistent/x.csv"}, ExitFailed, nil, "no such file", true},
		{"no file", []string{"indicators", "validate"}, ExitUsage, nil, "want exactly one FILE", true},
		{"bad format", []string{"indicators", "validate", "--format", "xml", "f"}, ExitUsage, nil, "--format \"xml\"", true},
		{"bad action", []string{"indicators", "validate", "--action", "Nuke", "f"}, ExitUsage, nil, "--action", true},
		{"no subcommand", []string{"indicators"}, ExitUsage, nil, "missing subcommand", true},
		{"unknown subcommand", []string{"indicators", "import"}, ExitUsage, nil, "unknown subcommand \"import\"", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := indRunCLI(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			rest := stdout
			for _, w := range tc.stdout {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("stdout lacks (in order) %q:\n%s", w, stdout)
					break
				}
				rest = rest[i+len(w):]
			}
			if tc.noStdout && stdout != "" {
				t.Errorf("unexpected stdout %q", stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.stderr)
			}
		})
	}
}

// writeTemp writes a file named name with content into a temporary
// directory and returns its path.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIndicatorsValidateJSON(t *testing.T) {
	code, stdout, _ := indRunCLI("indicators", "validate", "--json", indTestdata("mde-api.json"))
	if code != ExitFailed {
		t.Errorf("exit %d, want 1", code)
	}
	var rep struct {
		Format   string `json:"format"`
		Valid    bool   `json:"valid"`
		Stats    struct{ Indicators, Errors int }
		Problems []struct {
			File     string `json:"file"`
			Index    *int   `json:"index"`
			Field    string `json:"field"`
			Severity string `json:"severity"`
			Message  string `json:"message"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if rep.Format != "json" || rep.Valid || rep.Stats.Indicators != 2 || rep.Stats.Errors != 3 || len(rep.Problems) != 3 {
		t.Fatalf("report = %+v", rep)
	}
	p := rep.Problems[0]
	if p.Index == nil || *p.Index != 2 || p.Field != "indicatorType" || p.Severity != "error" || !strings.Contains(p.Message, "FileSha256") {
		t.Errorf("problem 0 = %+v", p)
	}
	// A clean file is valid and has an empty (not null) problem list.
	dir := t.TempDir()
	f := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(f, []byte("a.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = indRunCLI("indicators", "validate", f, "--json")
	if code != ExitOK || !strings.Contains(stdout, `"problems": []`) || !strings.Contains(stdout, `"valid": true`) {
		t.Errorf("clean list: exit %d\n%s", code, stdout)
	}
}
