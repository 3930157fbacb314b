package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
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
	"sync"
	"time"

	"github.com/netward/netward/indicators"
	"github.com/netward/netward/internal/guard"
)

// FeedPath is where serve-feed mounts the feed (CONTRACT §5 example URL).
const FeedPath = "/v1/indicators"

// serveFeedMain serves a directory of indicator files as a signed feed:
//
//	netward-console serve-feed --dir DIR --key KEY [--state FILE] [--listen ADDR] [--token T | --token-file F]
//
// KEY holds the base64 Ed25519 seed; it is created when missing, and the
// public key to put in the agents' indicators.publicKey is printed. The
// directory is re-read when a file in it changes. The feed's sequence
// (CONTRACT §5) is kept in the state file (default KEY.state) across
// restarts: the same content is served under the same sequence and
// generatedAt — the same bytes — and every change gets the next sequence,
// so agents never see the feed go back.
func serveFeedMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: netward-console serve-feed --dir DIR --key KEY [--state FILE] [--listen ADDR] (--token-file F | --token T | --no-auth)"
	fs := flag.NewFlagSet("serve-feed", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory of indicator files, tags.json/tags.txt and settings.json (required)")
	keyFile := fs.String("key", "", "file with the base64 Ed25519 signing key; created if missing (required)")
	stateFile := fs.String("state", "", "file keeping the feed sequence across restarts (default: KEY.state)")
	listen := fs.String("listen", "127.0.0.1:8470", "address to listen on")
	token := fs.String("token", "", "bearer token devices must send (visible to other local users in ps; prefer --token-file)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token devices must send")
	noAuth := fs.Bool("no-auth", false, "serve the feed to any client without a token (testing only)")
	if code, ok := parseFlags(fs, args, usage, stdout, stderr); !ok {
		return code
	}
	if *dir == "" || *keyFile == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	tok, code, ok := tokenFlags("serve-feed", usage, *token, *tokenFile, *noAuth, stderr)
	if !ok {
		return code
	}
	// The directory is checked before the key is created: a typo in --dir
	// must not leave a new signing key behind.
	if fi, err := os.Stat(*dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		fmt.Fprintf(stderr, "netward-console serve-feed: --dir %s: %v; give the directory holding the indicator files\n", *dir, err)
		return 1
	}
	if *stateFile == "" {
		*stateFile = *keyFile + ".state"
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if tok == "" {
		log.Warn("serving the feed without a token: any client can read it (--no-auth)")
	}
	priv, err := loadOrCreateKey(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console serve-feed: %v\n", err)
		return 1
	}
	h := indicators.NewHandler(indicators.HandlerConfig{Token: tok, Key: priv, Log: log, OnCheckIn: newCheckIns(log).note})
	pub := &publisher{h: h, dir: *dir, state: *stateFile, log: log}
	stamp, err := pub.publish()
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
	// A panic while serving one request answers it 500 and is logged
	// (rate-limited); the feed goes on.
	srv := &http.Server{Handler: guard.New(log).HTTP("feed", mux), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	fmt.Fprintf(stdout, "public key: %s\nsequence: %d (state in %s)\nserving indicator feed on http://%s%s\n",
		base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), h.Sequence(), *stateFile, ln.Addr(), FeedPath)
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
			if stamp, err = pub.publish(); err != nil {
				log.Error("feed directory not republished; the previous set stays", "err", err)
			}
		}
	}
}

// publisher publishes a directory under a sequence kept in a state file.
type publisher struct {
	h     *indicators.Handler
	dir   string
	state string
	log   *slog.Logger
	now   func() time.Time // nil: time.Now
}

// feedState is the state file: the last sequence, the content version it
// was given to, and when it was made.
type feedState struct {
	Sequence    uint64    `json:"sequence"`
	Version     string    `json:"version"`
	GeneratedAt time.Time `json:"generatedAt"`
}

// publish loads the directory and publishes it; problems are logged. New
// content gets the next sequence, saved before it is served: a crash
// between the two at worst skips a number, never reuses one.
func (p *publisher) publish() (string, error) {
	now := time.Now
	if p.now != nil {
		now = p.now
	}
	stamp, err := dirStamp(p.dir)
	if err != nil {
		return "", err
	}
	// Entries agents may refuse (a default route) are passed on with a
	// warning: each agent applies its own indicators.allowDefaultRoute.
	doc, problems, err := indicators.LoadDir(p.dir, indicators.Options{Now: now(), AllowDefaultRoute: true})
	if err != nil {
		return stamp, err
	}
	for _, pr := range problems {
		p.log.Warn("indicator problem", "at", pr.Position.String(), "severity", pr.Severity, "problem", pr.Message)
	}
	if doc.Version, err = doc.ContentVersion(); err != nil {
		return stamp, err
	}
	st, err := loadFeedState(p.state)
	if err != nil {
		return stamp, err
	}
	if st.Version != doc.Version {
		st = feedState{Sequence: st.Sequence + 1, Version: doc.Version, GeneratedAt: now().UTC().Truncate(time.Second)}
		if err := saveFeedState(p.state, st); err != nil {
			return stamp, err
		}
	}
	doc.Sequence, doc.GeneratedAt = st.Sequence, st.GeneratedAt
	return stamp, p.h.SetDocument(doc)
}

// loadFeedState reads the state file; a missing one is the zero state (the
// first sequence will be 1).
func loadFeedState(path string) (feedState, error) {
	var st feedState
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("feed state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("feed state %s is unreadable (%v); restore it from a backup, or move it aside and sign with a new key (agents refuse lower sequences under the old one)", path, err)
	}
	return st, nil
}

// saveFeedState writes the state durably: a temporary file, fsync, rename,
// fsync of the directory.
func saveFeedState(path string, st feedState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("feed state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename it is gone already
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("feed state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("feed state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("feed state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("feed state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// checkIns logs each device's check-in (CONTRACT §5 Netward-Agent) when it
// changes, keyed by the client address; the map is bounded.
type checkIns struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]string
}

const maxCheckIns = 10000

func newCheckIns(log *slog.Logger) *checkIns {
	return &checkIns{log: log, last: map[string]string{}}
}

func (c *checkIns) note(r *http.Request, a indicators.AgentInfo) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	v := a.String()
	c.mu.Lock()
	same := c.last[host] == v
	if !same {
		if len(c.last) >= maxCheckIns {
			clear(c.last)
		}
		c.last[host] = v
	}
	c.mu.Unlock()
	if !same {
		c.log.Info("device check-in", "from", host, "agent", a.Version, "os", a.Platform+"/"+a.OSVersion, "sequence", a.Seq)
	}
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
