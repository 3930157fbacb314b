// Package server is `netward-console serve`: one process with the
// indicator feed, telemetry ingest, device enrollment and the admin JSON
// API on one store, over HTTPS.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netward/netward/console/alerts"
	"github.com/netward/netward/console/api"
	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/chunkstore"
	"github.com/netward/netward/console/discovery"
	"github.com/netward/netward/console/feed"
	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/publish"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/console/ui"
)

// Server runs the console.
type Server struct {
	cfg *Config
	log *slog.Logger
	out io.Writer // where the address, fingerprint and first password go
	// Argon2 overrides the password cost (tests); zero: the default.
	Argon2 auth.Argon2Params
}

// New builds the Server; it starts nothing.
func New(cfg *Config, log *slog.Logger, out io.Writer) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if out == nil {
		out = io.Discard
	}
	return &Server{cfg: cfg, log: log, out: out}
}

// Run serves until ctx ends, then shuts down and returns nil (or the error
// that stopped it).
func (s *Server) Run(ctx context.Context) error {
	cfg := s.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	st, err := store.Open(ctx, store.Config{DSN: cfg.Store.DSN, MaxConns: cfg.Store.MaxConns, Log: s.log})
	if err != nil {
		return err
	}
	defer st.Close()
	au := auth.New(auth.Config{Store: st, Log: s.log, Argon2: s.Argon2,
		SessionIdle: time.Duration(cfg.Auth.SessionIdleHours) * time.Hour, SessionMax: time.Duration(cfg.Auth.SessionMaxDays) * 24 * time.Hour,
		LoginBurst: cfg.Auth.LoginBurst})
	key, err := feed.SigningKey(ctx, st)
	if err != nil {
		return err
	}
	builtin, err := catalog.Builtin()
	if err != nil {
		return err
	}
	var matcher atomic.Pointer[catalog.Matcher]
	rebuild := func(ctx context.Context) {
		cat, err := feed.Catalog(ctx, st, builtin)
		if err == nil {
			var m *catalog.Matcher
			if m, err = cat.NewMatcher(); err == nil {
				matcher.Store(m)
				return
			}
		}
		s.log.Error("app matcher not rebuilt; the previous one stays", "err", err)
	}
	appsVersion := firstBuild(ctx, st, rebuild, s.log)
	pub, err := feed.New(feed.Config{Store: st, Auth: au, Catalog: builtin, Key: key, Log: s.log,
		MaxWait: time.Duration(cfg.Feed.MaxWaitSeconds) * time.Second, RefreshInterval: time.Duration(cfg.Feed.RefreshSeconds) * time.Second,
		CheckinInterval: time.Duration(cfg.Feed.CheckinSeconds) * time.Second, FreshnessInterval: time.Duration(cfg.Feed.FreshnessMinutes) * time.Minute,
		LoadKey:           func(ctx context.Context) (ed25519.PrivateKey, error) { return feed.SigningKey(ctx, st) },
		MaxPollsPerDevice: cfg.Feed.MaxPollsPerDevice, MaxHeldPolls: cfg.Feed.MaxHeldPolls})
	if err != nil {
		return err
	}
	if _, err := pub.Publish(ctx); err != nil {
		return err
	}
	al, err := alerts.New(alerts.Config{Store: st, Log: s.log})
	if err != nil {
		return err
	}
	chunkDir := filepath.Join(cfg.DataDir, "chunks")
	icfg := ingest.Config{Store: st, Auth: au, Dir: chunkDir, Log: s.log, Hook: al,
		Matcher:       func() ingest.Matcher { return matcher.Load() },
		MaxCompressed: cfg.Ingest.MaxChunkBytes, MaxDecompressed: cfg.Ingest.MaxDecompressedBytes, MemoryBudget: cfg.Ingest.MemoryBudgetBytes,
		RetryAfter: time.Duration(cfg.Ingest.RetryAfterSeconds) * time.Second, Retention: time.Duration(cfg.Ingest.RetentionDays) * 24 * time.Hour,
		CompactAfter: time.Duration(cfg.Ingest.CompactAfterDays) * 24 * time.Hour, AggregateRetention: time.Duration(cfg.Ingest.AggregateRetentionDays) * 24 * time.Hour}
	if err := s.sinks(ctx, &icfg); err != nil {
		return err
	}
	if k, ok := icfg.Sink.(*publish.Kafka); ok {
		defer k.Close()
	}
	ing, err := ingest.New(icfg)
	if err != nil {
		return err
	}
	cert, created, err := loadOrCreateCert(cfg.TLS, cfg.DataDir, time.Now())
	if err != nil {
		return err
	}
	fp := Fingerprint(cert.Certificate[0])
	selfSigned := cfg.TLS.CertFile == ""
	apiFP := ""
	if selfSigned {
		apiFP = fp
	}
	disc, err := discovery.New(discovery.Config{Store: st, Log: s.log,
		Catalog: func(ctx context.Context) (*catalog.Catalog, error) { return feed.Catalog(ctx, st, builtin) },
		Publish: func(ctx context.Context) error { _, err := pub.Publish(ctx); al.Invalidate(); return err }})
	if err != nil {
		return err
	}
	a := api.New(api.Config{Store: st, Auth: au, Feed: pub, Ingest: ing, Catalog: builtin, CatalogChanged: rebuild, Fingerprint: apiFP, Log: s.log,
		Alerts: al, Discovery: disc, ChunkDir: chunkDir, Raw: icfg.Raw})

	mux := http.NewServeMux()
	mux.Handle(feed.Path, pub)
	mux.Handle(ingest.Path, ing)
	mux.Handle("/api/", a)
	mux.Handle("/v1/enroll", a)
	pages, err := ui.New(ui.Config{API: a, Auth: au, Log: s.log})
	if err != nil {
		return err
	}
	mux.Handle(ui.Base+"/", pages)
	mux.Handle(ui.Base, pages)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// Browsers land on the web UI; the JSON API is under /api/
		// (docs/console.md), agents use /v1/indicators, /v1/telemetry and
		// /v1/enroll.
		http.Redirect(w, r, ui.Base+"/", http.StatusSeeOther)
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (key \"listen\"): %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           api.Recover(s.log, mux),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // a chunk upload; long polls only write
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// Requests inherit ctx: cancelling it ends held long polls at once.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}

	fmt.Fprintf(s.out, "netward-console serving https://%s\n", ln.Addr())
	if selfSigned {
		note := ""
		if created {
			note = " (new self-signed certificate)"
		}
		fmt.Fprintf(s.out, "certificate SHA-256 fingerprint%s: %s\n", note, fp)
	}
	fmt.Fprintf(s.out, "feed public key: %s\n", base64.StdEncoding.EncodeToString(pub.PublicKey()))
	name, pw, err := au.Bootstrap(ctx)
	if err != nil {
		ln.Close()
		return fmt.Errorf("create the first admin: %w", err)
	}
	if pw != "" {
		fmt.Fprintf(s.out, "initial admin account %q, password (shown once, change it after signing in): %s\n", name, pw)
	}

	var wg sync.WaitGroup
	bg, stop := context.WithCancel(ctx)
	defer stop()
	runs := []func(context.Context) error{pub.Run, ing.Run, al.Run, disc.Run, func(ctx context.Context) error { return cleanSessions(ctx, st) }}
	if st.Dialect() == store.Postgres {
		// Replicas: custom apps made through another one.
		runs = append(runs, func(ctx context.Context) error { return watchCustomApps(ctx, st, appsVersion, customAppsPoll, rebuild) })
	}
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(bg) }()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
		<-errc
	}
	stop()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// sinks sets up the object storage and Kafka of the config.
func (s *Server) sinks(ctx context.Context, icfg *ingest.Config) error {
	if o := s.cfg.Ingest.ObjectStore; o.Endpoint != "" {
		secret, err := os.ReadFile(o.SecretKeyFile)
		if err != nil {
			return fmt.Errorf("ingest.objectStore.secretKeyFile: %w", err)
		}
		s3, err := chunkstore.New(chunkstore.Config{Endpoint: o.Endpoint, Bucket: o.Bucket, Region: o.Region, AccessKey: o.AccessKey,
			SecretKey: strings.TrimSpace(string(secret)), Tenant: o.Tenant})
		if err != nil {
			return err
		}
		if err := s3.EnsureBucket(ctx); err != nil {
			return fmt.Errorf("%w (check ingest.objectStore)", err)
		}
		icfg.Raw = s3
	}
	if k := s.cfg.Ingest.Kafka; len(k.Brokers) > 0 {
		p, err := publish.New(publish.Config{Brokers: k.Brokers, Topic: k.Topic})
		if err != nil {
			return err
		}
		icfg.Sink = p
	}
	return nil
}

// firstBuild builds the app matcher for the first time and returns the
// version of the custom apps read before it (watchCustomApps' since): an
// app another replica makes meanwhile then differs from it and is watched
// for. "" if the read failed (the watch's first reading then rebuilds).
func firstBuild(ctx context.Context, st *store.Store, rebuild func(context.Context), log *slog.Logger) string {
	v, err := st.CustomAppsVersion(ctx)
	if err != nil && ctx.Err() == nil {
		log.Warn("custom apps not watched for changes from other replicas until the database answers", "err", err)
	}
	rebuild(ctx)
	return v
}

// customAppsPoll is how often a replica looks for custom apps created or
// deleted through another one.
const customAppsPoll = 10 * time.Second

// watchCustomApps rebuilds the app matcher ingest attributes traffic with
// when the custom apps change in the store: on replicas sharing one
// PostgreSQL an app created through replica A must name the traffic that
// replica B ingests too (and B's analytics), and apps send no
// notification, so it looks every period. since is the version (from
// CustomAppsVersion, "" if unread) read before the matcher in use was
// built: a change made after that read, even before the watch starts, is
// rebuilt for.
func watchCustomApps(ctx context.Context, st *store.Store, since string, every time.Duration, rebuild func(context.Context)) error {
	last := since
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := st.CustomAppsVersion(ctx)
		if err != nil || v == last {
			continue
		}
		last = v
		rebuild(ctx)
	}
}

// cleanSessions removes expired sessions hourly.
func cleanSessions(ctx context.Context, st *store.Store) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_, _ = st.DeleteExpiredSessions(ctx, time.Now())
		}
	}
}
