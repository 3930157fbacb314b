package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netward/netward/internal/e2e"
)

func TestCheckPermissions(t *testing.T) {
	self := uint32(os.Getuid())
	tests := []struct {
		name string
		// setup builds the files under root and returns the config to check.
		setup func(t *testing.T, root string) *Config
		want  string // substring of the error; "" = accepted
	}{
		{"private file and dir", func(t *testing.T, root string) *Config {
			return &Config{Path: file(t, root, "netward.json", 0o644), DataDir: dir(t, root, "data", 0o700)}
		}, ""},
		{"embedded default", func(t *testing.T, root string) *Config {
			return &Config{Path: "", DataDir: dir(t, root, "data", 0o755)}
		}, ""},
		{"config writable by others", func(t *testing.T, root string) *Config {
			return &Config{Path: file(t, root, "netward.json", 0o646)}
		}, "writable by group or others (mode 0646)"},
		{"config writable by group", func(t *testing.T, root string) *Config {
			return &Config{Path: file(t, root, "netward.json", 0o664)}
		}, "chmod go-w " + "ROOT/netward.json"},
		{"data directory writable by group", func(t *testing.T, root string) *Config {
			return &Config{DataDir: dir(t, root, "data", 0o770)}
		}, "data directory ROOT/data is writable by group or others (mode 0770)"},
		{"missing data directory under a writable parent", func(t *testing.T, root string) *Config {
			return &Config{DataDir: filepath.Join(dir(t, root, "open", 0o777), "not", "yet")}
		}, "chmod go-w ROOT/open"},
		{"missing data directory under a private parent", func(t *testing.T, root string) *Config {
			return &Config{DataDir: filepath.Join(root, "not", "yet")}
		}, ""},
		{"writable parent directory", func(t *testing.T, root string) *Config {
			d := dir(t, root, "etc", 0o777)
			return &Config{Path: file(t, d, "netward.json", 0o644)}
		}, "directory ROOT/etc (above config file ROOT/etc/netward.json) is writable"},
		{"sticky parent directory", func(t *testing.T, root string) *Config {
			d := dir(t, root, "tmp", 0o777)
			if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
				t.Fatal(err)
			}
			return &Config{Path: file(t, d, "netward.json", 0o600)}
		}, ""},
		{"symlink to a writable file", func(t *testing.T, root string) *Config {
			target := file(t, dir(t, root, "shared", 0o755), "real.json", 0o666)
			link := filepath.Join(root, "netward.json")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return &Config{Path: link}
		}, "chmod go-w ROOT/shared/real.json"},
		// issue 20 #2: a world-writable indicator file let a user set
		// "mode": "off"; a 0644 token file leaked the device's credential.
		{"indicator file writable by others", func(t *testing.T, root string) *Config {
			return &Config{Indicators: Indicators{Source: "file://" + file(t, root, "ind.json", 0o666)}}
		}, "indicator file ROOT/ind.json is writable by group or others (mode 0666)"},
		{"indicator file under a writable directory", func(t *testing.T, root string) *Config {
			return &Config{Indicators: Indicators{Source: "file://" + filepath.Join(dir(t, root, "feed", 0o777), "ind.json")}}
		}, "chmod go-w ROOT/feed"},
		{"private indicator file", func(t *testing.T, root string) *Config {
			return &Config{Indicators: Indicators{Source: "file://" + file(t, root, "ind.json", 0o644)}}
		}, ""},
		{"token file readable by others", func(t *testing.T, root string) *Config {
			return &Config{Indicators: Indicators{TokenFile: file(t, root, "token", 0o644)}}
		}, "token file ROOT/token is readable by other users (mode 0644)"},
		{"token file writable by group", func(t *testing.T, root string) *Config {
			return &Config{Indicators: Indicators{TokenFile: file(t, root, "token", 0o620)}}
		}, "token file ROOT/token is writable by group or others"},
		{"private token file", func(t *testing.T, root string) *Config {
			return &Config{Indicators: Indicators{TokenFile: file(t, root, "token", 0o600)}}
		}, ""},
		{"missing config file", func(t *testing.T, root string) *Config {
			return &Config{Path: filepath.Join(root, "absent.json")}
		}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			cfg := tt.setup(t, root)
			err := permChecker{trusted: self}.check(cfg)
			want := strings.ReplaceAll(tt.want, "ROOT", root)
			switch {
			case want == "" && err != nil:
				t.Fatalf("check = %v, want nil", err)
			case want != "" && err == nil:
				t.Fatalf("check = nil, want error containing %q", want)
			case want != "" && !strings.Contains(err.Error(), want):
				t.Fatalf("check = %v, want error containing %q", err, want)
			}
		})
	}
}

func TestCheckPermissionsOwner(t *testing.T) {
	e2e.Require(t) // changing a file's owner needs root
	root := t.TempDir()
	p := file(t, root, "netward.json", 0o644)
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err := CheckPermissions(&Config{Path: p})
	if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "chown root:root "+p) {
		t.Fatalf("CheckPermissions = %v, want an ownership error with a chown fix", err)
	}
	d := dir(t, root, "data", 0o700)
	if err := os.Chown(d, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	err = CheckPermissions(&Config{Path: p, DataDir: d})
	if err == nil || !strings.Contains(err.Error(), "data directory "+d+" is owned by uid 65534") {
		t.Fatalf("CheckPermissions = %v, want the data directory refused", err)
	}
}

// TestCheckPermissionsSourceOwner: an indicator file or a token file owned
// by a real other user (uid 65534) is refused as root, as the config is.
func TestCheckPermissionsSourceOwner(t *testing.T) {
	e2e.Require(t) // changing a file's owner needs root
	root := t.TempDir()
	ind := file(t, root, "indicators.json", 0o644)
	tok := file(t, root, "token", 0o600)
	for _, p := range []string{ind, tok} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	err := CheckPermissions(&Config{Indicators: Indicators{Source: "file://" + ind, TokenFile: tok}})
	for _, want := range []string{"indicator file " + ind + " is owned by uid 65534", "token file " + tok + " is owned by uid 65534"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckPermissions = %v, want %q", err, want)
		}
	}
}

func file(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func dir(t *testing.T, parent, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(parent, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
