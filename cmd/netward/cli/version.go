package cli

import (
	"context"
	"fmt"

	"github.com/netward/netward/internal/version"
)

func versionCommand() *command {
	c := &command{
		name:    "version",
		usage:   "netward version [--json]",
		short:   "Print netward's version, commit and Go version.",
		example: "netward version --json",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q", fs.Arg(0))
		}
		v := version.Get()
		if *asJSON {
			return writeJSON(env.Stdout, v)
		}
		fmt.Fprintf(env.Stdout, "netward %s\ncommit   %s\ngo       %s\nplatform %s\n", v.Version, v.Commit, v.GoVersion, v.Platform)
		return nil
	}
	return c
}
