package cli

import (
	"context"
	"fmt"
)

// telemetryCommand is `netward telemetry requeue` (admin): chunks the
// console refused (quarantined) are queued for upload again, after the
// admin fixed what made the console refuse them.
func telemetryCommand() *command {
	c := &command{
		name:    "telemetry",
		usage:   "netward telemetry requeue [--json] [--config FILE | --socket PATH]",
		short:   "Queue the telemetry chunks the console refused (quarantined) for upload again (admin).",
		example: "sudo netward telemetry requeue",
	}
	c.run = func(ctx context.Context, env *Env, args []string) error {
		if len(args) == 0 {
			return usageErrorf("missing subcommand; want \"requeue\"")
		}
		if args[0] == "-h" || args[0] == "--help" {
			printCommandHelp(env.Stdout, c, nil)
			return nil
		}
		if args[0] != "requeue" {
			return usageErrorf("unknown subcommand %q; want \"requeue\"", args[0])
		}
		fs := newFlags(env, c)
		cf := addClientFlags(fs)
		cl, err := parseNoArgsClient(env, fs, cf, args[1:])
		if err != nil {
			return err
		}
		r, err := cl.RequeueTelemetry(ctx)
		if err != nil {
			return apiErr(err)
		}
		if *cf.json {
			return writeJSON(env.Stdout, r)
		}
		fmt.Fprintf(env.Stdout, "Queued %d quarantined chunk(s) for upload again; `netward status` shows the upload.\n", r.Requeued)
		return nil
	}
	return c
}
