package cli

import (
	"context"
	"fmt"

	"github.com/netward/netward/filter/hostnet"
)

// cleanupResult is `netward cleanup --json` output.
type cleanupResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// cleanupCommand is `netward cleanup`: remove every OS change the agent
// makes (nftables tables netward_dns and netward_inspect on Linux, the NRPT
// rule on Windows). Safe any time, also after a crash; needs no agent.
func cleanupCommand() *command { return cleanupWith(hostnet.Cleanup) }

func cleanupWith(clean func() error) *command {
	c := &command{
		name:  "cleanup",
		usage: "netward cleanup [--json]",
		short: "Remove every OS change netward makes (firewall tables, DNS redirection); safe any time, also after a crash.",
		example: "sudo netward cleanup\n" +
			"sudo netward cleanup --json   # {\"ok\": true}",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		fs := newFlags(env, c)
		asJSON := fs.Bool("json", false, "print JSON: {\"ok\": bool, \"error\": string}")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q", fs.Arg(0))
		}
		err := clean()
		if *asJSON {
			r := cleanupResult{OK: err == nil}
			if err != nil {
				r.Error = err.Error()
			}
			if werr := writeJSON(env.Stdout, r); werr != nil {
				return werr
			}
			if err != nil {
				return silentExit(ExitFailed)
			}
			return nil
		}
		if err != nil {
			return failf("%w", err)
		}
		fmt.Fprintln(env.Stdout, "netward: no OS changes left (firewall tables and DNS redirection removed)")
		return nil
	}
	return c
}
