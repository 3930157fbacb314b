// Command package builds netward's .deb and .rpm with nFPM
// (github.com/goreleaser/nfpm) used as a library. `make package` runs it.
//
// It is its own module so that nFPM's dependencies never enter the agent's
// go.mod (the agent binary must not grow or change because of packaging).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "package: %v\n", err)
		os.Exit(1)
	}
}

// Paths inside the packages.
const (
	binPath       = "/usr/bin/netward"
	unitPath      = "/usr/lib/systemd/system/netward.service"
	configDir     = "/etc/netward"
	configPath    = "/etc/netward/netward.json"
	indicatorPath = "/etc/netward/indicators.json"
)

func run(args []string) error {
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	binary := fs.String("binary", "", "the linux netward binary to package (required)")
	unit := fs.String("unit", "", "the systemd unit (netward install --print-unit --executable "+binPath+"; required)")
	version := fs.String("version", "0.0.0", "package version (a leading v is dropped)")
	arch := fs.String("arch", "amd64", "GOARCH of the binary")
	out := fs.String("out", ".", "output directory")
	formats := fs.String("formats", "deb,rpm", "comma-separated package formats: deb, rpm")
	assets := fs.String("assets", ".", "directory holding netward.json, indicators.json and scripts/")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || *unit == "" {
		return errors.New("-binary and -unit are required")
	}
	for _, f := range []string{*binary, *unit} {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, format := range strings.Split(*formats, ",") {
		var p nfpm.Packager
		switch format {
		case "deb":
			p = deb.Default
		case "rpm":
			p = rpm.DefaultRPM
		default:
			return fmt.Errorf("format %q: want deb or rpm", format)
		}
		// Package mutates the Info (it prepares the contents for its own
		// format), so each format gets a fresh one.
		info := nfpm.WithDefaults(newInfo(*binary, *unit, *assets, pkgVersion(*version), *arch))
		name := filepath.Join(*out, p.ConventionalFileName(info))
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		if err := p.Package(info, f); err != nil {
			f.Close()
			os.Remove(name)
			return fmt.Errorf("%s: %w", format, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Println(name)
	}
	return nil
}

// pkgVersion turns a git describe string into a version both dpkg and rpm
// accept: "v1.2.3" → "1.2.3"; a bare commit "667027c" → "0.0.0~667027c"
// (sorts before any release); '-' is not allowed in either upstream version.
func pkgVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	v = strings.ReplaceAll(v, "-", "~")
	if v == "" || v[0] < '0' || v[0] > '9' {
		v = "0.0.0~" + v
	}
	return strings.TrimSuffix(v, "~")
}

func newInfo(binary, unit, assets, version, arch string) *nfpm.Info {
	root := &files.ContentFileInfo{Owner: "root", Group: "root"}
	mode := func(m os.FileMode) *files.ContentFileInfo {
		c := *root
		c.Mode = m
		return &c
	}
	return &nfpm.Info{
		Name:          "netward",
		Arch:          arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "netward maintainers <netward@example.org>",
		Description: "endpoint network protection agent\n" +
			"netward blocks, warns on and audits connections to network indicators\n" +
			"(domains, URLs, IP addresses) at the DNS, TLS SNI, QUIC and HTTP layers.",
		Vendor:   "netward",
		Homepage: "https://github.com/netward/netward",
		License:  "Apache-2.0",
		Overridables: nfpm.Overridables{
			Depends: []string{"systemd"},
			Contents: files.Contents{
				{Source: binary, Destination: binPath, FileInfo: mode(0o755)},
				{Source: unit, Destination: unitPath, FileInfo: mode(0o644)},
				// Root-owned and not group/other-writable: the agent refuses to
				// run as root from a config anyone else could change.
				{Destination: configDir, Type: files.TypeDir, FileInfo: mode(0o755)},
				{Source: filepath.Join(assets, "netward.json"), Destination: configPath, Type: files.TypeConfigNoReplace, FileInfo: mode(0o644)},
				{Source: filepath.Join(assets, "indicators.json"), Destination: indicatorPath, Type: files.TypeConfigNoReplace, FileInfo: mode(0o644)},
			},
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(assets, "scripts", "postinstall.sh"),
				PreRemove:   filepath.Join(assets, "scripts", "preremove.sh"),
				PostRemove:  filepath.Join(assets, "scripts", "postremove.sh"),
			},
		},
	}
}
