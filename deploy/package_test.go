// Package deploy holds the packaging and policy-template assets; its tests
// build the real packages with `make package` and check what they contain.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/internal/e2e"
)

// requirePackaging runs the slow packaging test (a full build of netward and
// of the nFPM packager, about a minute cold) only when asked: with
// NETWARD_PACKAGE_TEST=1 or in CI (NETWARD_E2E=require), where missing tools
// are a failure.
func requirePackaging(t *testing.T, tools ...string) {
	t.Helper()
	ci := os.Getenv("NETWARD_E2E") == "require"
	if !ci && os.Getenv("NETWARD_PACKAGE_TEST") != "1" {
		e2e.Skip(t, "slow: builds the packages; run with NETWARD_PACKAGE_TEST=1 (CI: NETWARD_E2E=require)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " not found (apt-get install make dpkg systemd)"
			if ci {
				t.Fatal(msg)
			}
			e2e.Skip(t, msg)
		}
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\n%s%s", name, args, err, out.String(), errb.String())
	}
	return out.String()
}

func TestPackage(t *testing.T) {
	requirePackaging(t, "make", "dpkg-deb", "dpkg", "systemd-analyze")
	out := t.TempDir()
	run(t, "..", "make", "package", "BIN="+out, "VERSION=v1.2.3")
	debs, _ := filepath.Glob(filepath.Join(out, "netward_1.2.3_*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(out, "netward-1.2.3-1.*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("make package made debs %q, rpms %q; want one of each", debs, rpms)
	}
	deb := debs[0]

	t.Run("deb contents", func(t *testing.T) {
		list := run(t, "", "dpkg-deb", "-c", deb)
		for _, want := range []string{
			"-rwxr-xr-x root/root", "./usr/bin/netward\n",
			"-rw-r--r-- root/root", "./usr/lib/systemd/system/netward.service\n",
			"./etc/netward/netward.json\n", "./etc/netward/indicators.json\n",
		} {
			if !strings.Contains(list, want) {
				t.Errorf("dpkg-deb -c lacks %q:\n%s", want, list)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			// Nothing in the package may be writable by group or others,
			// or the agent would refuse to run from it.
			if f := strings.Fields(line); len(f) < 6 || f[0][5] == 'w' || f[0][8] == 'w' || f[1] != "root/root" {
				t.Errorf("entry %q: want root-owned and not group/other-writable", line)
			}
		}
	})

	t.Run("deb control and scripts", func(t *testing.T) {
		info := run(t, "", "dpkg-deb", "-I", deb)
		for _, want := range []string{"Package: netward\n", "Version: 1.2.3\n", "Depends: systemd\n", "postinst", "prerm", "postrm"} {
			if !strings.Contains(info, want) {
				t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
			}
		}
		ctl := filepath.Join(t.TempDir(), "DEBIAN")
		run(t, "", "dpkg-deb", "-e", deb, ctl)
		conffiles, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
		if err != nil || string(conffiles) != "/etc/netward/indicators.json\n/etc/netward/netward.json\n" {
			t.Errorf("conffiles = %q, %v; want the config and indicator file (kept on upgrade)", conffiles, err)
		}
		scripts := map[string][]string{
			"postinst": {"systemctl enable netward.service", "systemctl restart netward.service"},
			"prerm":    {"systemctl stop netward.service", "systemctl disable netward.service", "/usr/bin/netward cleanup"},
			"postrm":   {"rm -rf /var/lib/netward"},
		}
		for name, wants := range scripts {
			b, err := os.ReadFile(filepath.Join(ctl, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range wants {
				if !strings.Contains(string(b), w) {
					t.Errorf("%s lacks %q", name, w)
				}
			}
			run(t, "", "sh", "-n", filepath.Join(ctl, name))
		}
	})

	t.Run("dpkg unpacks it into a scratch root", func(t *testing.T) {
		root := t.TempDir()
		for _, d := range []string{"var/lib/dpkg/updates", "var/lib/dpkg/info"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// --unpack runs no maintainer script (there is no preinst): the
		// scripts would otherwise act on this host's systemd.
		run(t, "", "dpkg", "--root="+root, "--force-depends", "--unpack", deb)
		if st := run(t, "", "dpkg", "--root="+root, "-s", "netward"); !strings.Contains(st, "Status: install ok unpacked") {
			t.Errorf("dpkg -s: %s", st)
		}
		bin := filepath.Join(root, "usr/bin/netward")
		if v := run(t, "", bin, "version"); !strings.Contains(v, "1.2.3") {
			t.Errorf("packaged netward version = %q, want 1.2.3", v)
		}
		// The shipped unit is exactly what `netward install` writes for
		// /usr/bin/netward, and systemd accepts it.
		unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/netward.service"))
		if err != nil {
			t.Fatal(err)
		}
		if want := run(t, "", bin, "install", "--print-unit", "--executable", "/usr/bin/netward"); string(unit) != want {
			t.Errorf("packaged unit differs from `netward install --print-unit`:\n%s\nwant:\n%s", unit, want)
		}
		local := filepath.Join(t.TempDir(), "netward.service")
		if err := os.WriteFile(local, bytes.ReplaceAll(unit, []byte("/usr/bin/netward"), []byte(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("systemd-analyze", "verify", "--man=no", local).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify on the packaged unit: %v\n%s", err, out)
		}
		// The default config parses, and (as root) passes the permission
		// check the service makes at start.
		cfgPath := filepath.Join(root, "etc/netward/netward.json.dpkg-new")
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatalf("packaged config: %v", err)
		}
		if cfg.DataDir != "/var/lib/netward" || cfg.Indicators.Source != "file:///etc/netward/indicators.json" {
			t.Errorf("packaged config dataDir %q, source %q", cfg.DataDir, cfg.Indicators.Source)
		}
		if os.Geteuid() == 0 {
			cfg.DataDir = filepath.Join(root, "var/lib/dpkg")
			if err := config.CheckPermissions(cfg); err != nil {
				t.Errorf("packaged files fail the permission check: %v", err)
			}
		}
	})

	t.Run("rpm", func(t *testing.T) {
		b, err := os.ReadFile(rpms[0])
		if err != nil {
			t.Fatal(err)
		}
		// RPM lead magic (rpm file format, "Lead"): ed ab ee db.
		if len(b) < 96 || !bytes.Equal(b[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
			t.Fatalf("%s is not an RPM package", rpms[0])
		}
		if path, err := exec.LookPath("rpm"); err == nil {
			list := run(t, "", path, "-qpl", rpms[0])
			for _, want := range []string{"/usr/bin/netward", "/usr/lib/systemd/system/netward.service", "/etc/netward/netward.json"} {
				if !strings.Contains(list, want) {
					t.Errorf("rpm -qpl lacks %s:\n%s", want, list)
				}
			}
		}
	})
}
