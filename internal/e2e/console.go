package e2e

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// Console is a running `netward-console serve` and what it printed at
// start: its address, its self-signed certificate's fingerprint and the
// first admin's password.
type Console struct {
	Base, Fingerprint, Password string
	Log                         *SyncBuf // its stderr
}

// StartConsole runs `bin serve --config cfgPath` until the test ends and
// reads its start-up lines (a fresh data directory: the password is
// printed on the first start only).
func StartConsole(t testing.TB, bin, cfgPath string) Console {
	t.Helper()
	c := Console{Log: &SyncBuf{}}
	srv := exec.Command(bin, "serve", "--config", cfgPath)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = c.Log
	Start(t, srv)
	sc := bufio.NewScanner(out)
	for c.Password == "" && sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "netward-console serving "); ok {
			c.Base = v
		}
		if _, v, ok := strings.Cut(line, "fingerprint (new self-signed certificate): "); ok {
			c.Fingerprint = v
		}
		if i := strings.LastIndex(line, "): "); strings.HasPrefix(line, "initial admin") && i > 0 {
			c.Password = line[i+3:]
		}
	}
	go io.Copy(io.Discard, out)
	if c.Base == "" || c.Fingerprint == "" || c.Password == "" {
		t.Fatalf("the console printed no address, fingerprint or password (%q %q %q); log:\n%s", c.Base, c.Fingerprint, c.Password, c.Log.String())
	}
	return c
}
