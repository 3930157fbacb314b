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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: netward-console collect --dir DIR [--listen ADDR] [--token-file F]\n       netward-console serve-feed --dir DIR --key KEY [--listen ADDR] [--token T]")
		return 2
	}
	switch args[0] {
	case "collect":
		return collectMain(ctx, args[1:], stdout, stderr)
	case "serve-feed":
		return serveFeedMain(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "netward-console: unknown command %q\n", args[0])
	return 2
}
