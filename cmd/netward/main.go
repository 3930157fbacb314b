// Command netward is the endpoint network-protection agent and its CLI.
package main

import (
	"context"
	"os"

	"github.com/netward/netward/cmd/netward/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:]))
}
