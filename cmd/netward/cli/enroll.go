package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/netward/netward/agent/config"
	"github.com/netward/netward/agent/enroll"
)

func enrollCommand() *command {
	c := &command{
		name:  "enroll",
		usage: "netward enroll --console URL --key FILE [--fingerprint SHA256] [--config FILE] [--json]",
		short: "Admin: enroll with a console; the device token goes to the data dir and is used for the feed and telemetry.",
		example: "netward enroll --console https://console.example:8443 --key /root/enroll.key \\\n" +
			"    --fingerprint 94:B7:33:98:…:7A:C1   # as netward-console serve printed it",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		console := fs.String("console", "", "the console's base URL (https://host:port)")
		keyFile := fs.String("key", "", "file holding the enrollment key the console showed")
		fp := fs.String("fingerprint", "", "SHA-256 of the console's self-signed certificate, to pin it")
		cfgPath := fs.String("config", "", "config file (default: "+config.SystemPath()+" if it exists, else the embedded default)")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q", fs.Arg(0))
		}
		if *console == "" || *keyFile == "" {
			return usageErrorf("give --console URL and --key FILE")
		}
		key, err := os.ReadFile(*keyFile)
		if err != nil {
			return failf("enrollment key: %w", err)
		}
		cfg, err := loadRunConfig(*cfgPath)
		if err != nil {
			return failf("%w", err)
		}
		if err := config.ResolveIdentity(cfg); err != nil {
			return failf("%w", err)
		}
		e, err := enroll.Device(ctx, enroll.Options{Console: *console, Key: strings.TrimSpace(string(key)), Fingerprint: *fp,
			DataDir: cfg.DataDir, DeviceID: cfg.Device.ID, DeviceName: cfg.Device.Name})
		if err != nil {
			return failf("%w", err)
		}
		if *asJSON {
			return writeJSON(env.Stdout, e)
		}
		fmt.Fprintf(env.Stdout, "enrolled device %s with %s\nfeed       %s\ntelemetry  %s\ntoken      %s (0600)\n",
			e.DeviceID, e.Console, e.FeedURL, e.TelemetryEndpoint, cfg.DataDir+string(os.PathSeparator)+enroll.DeviceTokenFile)
		fmt.Fprintln(env.Stdout, "restart the agent (netward restart) to use it")
		return nil
	}
	return c
}
