package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/netward/netward/console/server"
)

// serveMain runs the console: netward-console serve [--config FILE].
func serveMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "console config file (default: the embedded default, data under ./netward-console-data)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (docs/scale.md)")
	pprofAddr := fs.String("pprof", "", "serve Go's profiles on this loopback address (127.0.0.1:6060; docs/scale.md)")
	if code, ok := parseFlags(fs, args, "usage: netward-console serve [--config FILE] [--cpuprofile FILE] [--pprof 127.0.0.1:PORT]", stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: netward-console serve [--config FILE]")
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console: %v\n", err)
		return 1
	}
	log := newLogger(stderr, cfg.Log.Level)
	paceGC(ctx, log)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "netward-console: --cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if *pprofAddr != "" {
		if err := servePprof(ctx, *pprofAddr, stdout); err != nil {
			fmt.Fprintf(stderr, "netward-console: %v\n", err)
			return 1
		}
	}
	if cfg.Path == "" {
		log.Info("running on the embedded default config", "dataDir", cfg.DataDir, "listen", cfg.Listen)
	}
	if err := server.New(cfg, log, stdout).Run(ctx); err != nil {
		fmt.Fprintf(stderr, "netward-console: %v\n", err)
		return 1
	}
	return 0
}

func loadConfig(path string) (*server.Config, error) {
	if path == "" {
		return server.DefaultConfig()
	}
	return server.LoadConfig(path)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
