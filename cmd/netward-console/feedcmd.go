package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/netward/netward/console/feed"
	"github.com/netward/netward/console/store"
)

const feedUsage = `usage: netward-console feed rotate-key [--json] [--config FILE]
       netward-console feed public-key [--json] [--config FILE]`

// feedMain manages the feed's signing key in the store; a running console
// (every replica) takes a rotated key up within feed.refreshSeconds.
func feedMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "rotate-key" && args[0] != "public-key") {
		fmt.Fprintln(stderr, feedUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("feed "+verb, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "console config file (default: the embedded default)")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args[1:], feedUsage, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, feedUsage)
		return 2
	}
	st, err := openStore(ctx, *cfgPath, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console: %v\n", err)
		return 1
	}
	defer st.Close()
	var key ed25519.PrivateKey
	if verb == "rotate-key" {
		key, err = feed.RotateSigningKey(ctx, st)
		if err == nil {
			err = st.Audit(ctx, store.AuditEntry{Actor: "netward-console feed rotate-key", Action: "feed.rotateKey",
				Target: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))})
		}
	} else {
		key, err = feed.SigningKey(ctx, st)
	}
	if err != nil {
		fmt.Fprintf(stderr, "netward-console feed %s: %v\n", verb, err)
		return 1
	}
	pk := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	if *asJSON {
		_ = json.NewEncoder(stdout).Encode(map[string]string{"publicKey": pk})
		return 0
	}
	fmt.Fprintf(stdout, "feed public key: %s\n", pk)
	if verb == "rotate-key" {
		fmt.Fprint(stdout, "The console signs with the new key within feed.refreshSeconds (every replica).\n"+
			"Agents refuse the feed until they have the new public key (they keep their set meanwhile):\n"+
			"on each, run `netward enroll` again (it proves its device token) and `netward restart`,\n"+
			"or set indicators.publicKey to the key above. A new key resets the agents' sequence floor.\n")
	}
	return 0
}

// openStore opens (and migrates) the store a config file names; the
// offline verbs (admin, feed) work on it directly, also while the console
// runs. The store logs to stderr at the config's level, so an upgrade's
// migrations (minutes on a large store) say what they do instead of
// leaving the command silent; stdout stays the command's answer (--json).
func openStore(ctx context.Context, cfgPath string, stderr io.Writer) (*store.Store, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, store.Config{DSN: cfg.Store.DSN, Log: newLogger(stderr, cfg.Log.Level)})
}
