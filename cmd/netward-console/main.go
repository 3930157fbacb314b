// Command netward-console is the reference management server. This minimal
// main dispatches subcommands; the full dispatcher lands from another branch.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: netward-console serve [--config FILE]          the console: feed, ingest, enrollment, admin API
       netward-console admin add|passwd|list|remove …    manage console accounts
       netward-console feed rotate-key | public-key [--config FILE]   the feed's signing key
       netward-console config default | check --config FILE
       netward-console licenses
       netward-console loadtest [--devices N --polls N --uploaders N --duration D …]   fleet simulator (docs/scale.md)
       netward-console collect --dir DIR …              (standalone collector, see README)
       netward-console serve-feed --dir DIR --key KEY …  (standalone file-driven feed, see README)`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	case "serve":
		return serveMain(ctx, args[1:], stdout, stderr)
	case "admin":
		return adminMain(ctx, args[1:], os.Stdin, stdout, stderr)
	case "config":
		return configMain(args[1:], stdout, stderr)
	case "feed":
		return feedMain(ctx, args[1:], stdout, stderr)
	case "licenses":
		return licensesMain(stdout)
	case "collect":
		return collectMain(ctx, args[1:], stdout, stderr)
	case "serve-feed":
		return serveFeedMain(ctx, args[1:], stdout, stderr)
	case "loadtest":
		return loadtestMain(ctx, args[1:], stdout, stderr)
	case "loadtest-worker": // started by loadtest --procs, not by people
		return loadtestWorkerMain(ctx, os.Stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "netward-console: unknown command %q\n", args[0])
	return 2
}
