package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/netward/netward/telemetry"
)

// collectMain runs the telemetry collector alone:
//
//	netward-console collect --dir DIR [--listen ADDR] [--token-file F]
//	                        [--tls-cert F --tls-key F] [--no-auth]
//
// It serves PUT /v1/telemetry/{deviceId}/{chunkId} and GET
// /v1/telemetry/{deviceId} (the device rollup) until interrupted.
func collectMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: netward-console collect --dir DIR [--listen ADDR] (--token-file F | --token T | --no-auth) [--tls-cert F --tls-key F]"
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for chunks and rollups (required)")
	listen := fs.String("listen", "127.0.0.1:8480", "address to listen on")
	token := fs.String("token", "", "bearer token devices must send (visible to other local users in ps; prefer --token-file)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token devices must send")
	noAuth := fs.Bool("no-auth", false, "accept uploads without a token (testing only)")
	cert := fs.String("tls-cert", "", "TLS certificate (PEM); with --tls-key serves HTTPS")
	key := fs.String("tls-key", "", "TLS private key (PEM)")
	if code, ok := parseFlags(fs, args, usage, stdout, stderr); !ok {
		return code
	}
	if *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if (*cert == "") != (*key == "") {
		fmt.Fprintln(stderr, "netward-console collect: give both --tls-cert and --tls-key, or neither")
		return 2
	}
	tok, code, ok := tokenFlags("collect", usage, *token, *tokenFile, *noAuth, stderr)
	if !ok {
		return code
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := telemetry.CollectorConfig{Dir: *dir, Log: log}
	if tok != "" {
		cfg.Authorize = telemetry.TokenAuthorizer(tok)
	} else {
		cfg.AllowAnyToken = true
		log.Warn("collector accepts uploads without a token (--no-auth)")
	}
	coll, err := telemetry.NewCollector(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console collect: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console collect: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: coll, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
	scheme := "http"
	if *cert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "collecting telemetry on %s://%s into %s\n", scheme, ln.Addr(), *dir)
	errc := make(chan error, 1)
	go func() {
		if *cert != "" {
			errc <- srv.ServeTLS(ln, *cert, *key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "netward-console collect: %v\n", err)
		return 1
	}
	return 0
}
