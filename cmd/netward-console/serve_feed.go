package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netward/netward/indicators"
)

// FeedPath is where serve-feed mounts the feed (CONTRACT §5 example URL).
const FeedPath = "/v1/indicators"

// serveFeedMain serves a directory of indicator files as a signed feed:
//
//	netward-console serve-feed --dir DIR --key KEY [--listen ADDR] [--token T | --token-file F]
//
// KEY holds the base64 Ed25519 seed; it is created when missing, and the
// public key to put in the agents' indicators.publicKey is printed. The
// directory is re-read when a file in it changes.
func serveFeedMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve-feed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory of indicator files, tags.json/tags.txt and settings.json (required)")
	keyFile := fs.String("key", "", "file with the base64 Ed25519 signing key; created if missing (required)")
	listen := fs.String("listen", "127.0.0.1:8470", "address to listen on")
	token := fs.String("token", "", "bearer token devices must send")
	tokenFile := fs.String("token-file", "", "file holding the bearer token")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || *keyFile == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: netward-console serve-feed --dir DIR --key KEY [--listen ADDR] [--token T | --token-file F]")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	tok := *token
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "netward-console serve-feed: %v\n", err)
			return 1
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		log.Warn("serving the feed without a token: any client can read it (give --token or --token-file)")
	}
	priv, err := loadOrCreateKey(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console serve-feed: %v\n", err)
		return 1
	}
	h := indicators.NewHandler(indicators.HandlerConfig{Token: tok, Key: priv, Log: log})
	stamp, err := publishDir(h, *dir, log)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console serve-feed: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console serve-feed: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle(FeedPath, h)
	// WriteTimeout is left unset: long polls hold a response for minutes.
	// Requests inherit ctx (BaseContext), so cancelling it ends held long
	// polls at once and Shutdown does not wait for them.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	fmt.Fprintf(stdout, "public key: %s\nserving indicator feed on http://%s%s\n",
		base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), ln.Addr(), FeedPath)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	stopServer := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-errc // Serve has returned: no goroutine outlives serveFeedMain
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopServer()
			return 0
		case err := <-errc:
			fmt.Fprintf(stderr, "netward-console serve-feed: %v\n", err)
			return 1
		case <-tick.C:
			s, err := dirStamp(*dir)
			if err != nil || s == stamp {
				continue
			}
			if stamp, err = publishDir(h, *dir, log); err != nil {
				log.Error("feed directory not republished; the previous set stays", "err", err)
			}
		}
	}
}

// publishDir loads dir and publishes it; problems are logged.
func publishDir(h *indicators.Handler, dir string, log *slog.Logger) (string, error) {
	stamp, err := dirStamp(dir)
	if err != nil {
		return "", err
	}
	doc, problems, err := indicators.LoadDir(dir, indicators.Options{Now: time.Now()})
	if err != nil {
		return stamp, err
	}
	for _, p := range problems {
		log.Warn("indicator problem", "at", p.Position.String(), "severity", p.Severity, "problem", p.Message)
	}
	doc.GeneratedAt = time.Now().UTC().Truncate(time.Second)
	return stamp, h.SetDocument(doc)
}

// dirStamp summarises the directory's names, sizes and modification times.
func dirStamp(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s/%d/%d", e.Name(), info.Size(), info.ModTime().UnixNano()))
	}
	sort.Strings(parts)
	return strings.Join(parts, "|"), nil
}

// loadOrCreateKey reads a base64 Ed25519 seed (or full private key), or
// creates one with mode 0600.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(seed)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("create signing key: %w", err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: not base64: %w", path, err)
	case len(raw) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case len(raw) == ed25519.PrivateKeySize:
		return ed25519.PrivateKey(raw), nil
	}
	return nil, fmt.Errorf("%s: %d bytes; want a 32-byte Ed25519 seed or 64-byte private key in base64", path, len(raw))
}
