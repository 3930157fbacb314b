package cli

import (
	"context"

	"github.com/netward/netward/agent/warnpage"
)

// caCommand is `netward ca export`: print the local CA certificate (PEM) so an
// administrator can deploy it as trusted through MDM or Group Policy. It reads
// the data directory of the resolved config directly: no agent needed.
func caCommand() *command {
	c := &command{
		name:    "ca",
		usage:   "netward ca export [--config FILE]",
		short:   "Print the local CA certificate (warn.localCA) for trust deployment.",
		example: "netward ca export > netward-ca.pem",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		cfgPath := fs.String("config", "", "config file whose dataDir holds the CA (default: the one 'netward run' uses)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 || fs.Arg(0) != "export" {
			return usageErrorf("want the subcommand 'export'")
		}
		cfg, err := loadRunConfig(*cfgPath)
		if err != nil {
			return failf("%w", err)
		}
		pem, err := warnpage.ReadCACert(cfg.DataDir)
		if err != nil {
			return failf("%w", err)
		}
		_, err = env.Stdout.Write(pem)
		return err
	}
	return c
}
