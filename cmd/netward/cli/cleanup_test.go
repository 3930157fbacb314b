package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCleanup(t *testing.T) {
	for _, tt := range []struct {
		name   string
		args   []string
		err    error
		code   int
		stdout string
		stderr string
		jsonOK *bool
	}{
		{"ok", nil, nil, ExitOK, "no OS changes left", "", nil},
		{"failure", nil, errors.New("delete table ip netward_dns: permission denied"), ExitFailed, "", "permission denied", nil},
		{"json ok", []string{"--json"}, nil, ExitOK, `"ok": true`, "", new(bool)},
		{"json failure", []string{"--json"}, errors.New("boom"), ExitFailed, `"error": "boom"`, "", new(bool)},
		{"stray argument", []string{"now"}, nil, ExitUsage, "", "unexpected argument", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			c := cleanupWith(func() error { called = true; return tt.err })
			var out, errb bytes.Buffer
			env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
			code := report(env, c, c.run(context.Background(), env, tt.args))
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stdout %q stderr %q, want %q / %q", out.String(), errb.String(), tt.stdout, tt.stderr)
			}
			if tt.jsonOK != nil {
				var r cleanupResult
				if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.OK != (tt.err == nil) {
					t.Errorf("JSON %q: %v", out.String(), err)
				}
			}
			if tt.code != ExitUsage && !called {
				t.Errorf("cleanup function not called")
			}
		})
	}
}
