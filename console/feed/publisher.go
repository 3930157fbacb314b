package feed

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/indicators"
)

// Config configures the Publisher.
type Config struct {
	Store   *store.Store
	Auth    *auth.Service
	Catalog *catalog.Catalog // the shipped catalog; custom apps come from the store
	Key     ed25519.PrivateKey
	Log     *slog.Logger
	Now     func() time.Time
	// MaxWait caps a long poll's ?wait (default 5 minutes).
	MaxWait time.Duration
	// RefreshInterval is how often the store is asked for a sequence made
	// elsewhere (another replica; default 2 s). Changes made through this
	// process are published at once.
	RefreshInterval time.Duration
	// FreshnessInterval is how often the freshness proof is re-signed
	// (default 1 h; CONTRACT §5 asks for at least hourly).
	FreshnessInterval time.Duration
	// CheckinInterval is how often buffered check-ins are written (1 s).
	CheckinInterval time.Duration
}

// Publisher keeps the current feed document in memory and serves it.
type Publisher struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	cur     atomic.Pointer[published]
	mu      sync.Mutex
	changed chan struct{} // closed and replaced when a new sequence is loaded
	waiters map[string]map[chan struct{}]struct{}

	publishMu sync.Mutex // one rebuild at a time in this process
	warnings  atomic.Pointer[[]string]

	checkins *checkinBuffer
	served   atomic.Int64
}

// published is one sequence ready to serve.
type published struct {
	seq         int64
	version     string
	generatedAt time.Time
	count       int
	body, gz    []byte
	etag        string
	sig         string
	fresh       string // Netward-Freshness value
	freshAt     time.Time
}

// New checks the config; it starts nothing.
func New(cfg Config) (*Publisher, error) {
	if cfg.Store == nil || cfg.Auth == nil || cfg.Catalog == nil {
		return nil, errors.New("feed: Store, Auth and Catalog are required")
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("feed: no Ed25519 signing key")
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 5 * time.Minute
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 2 * time.Second
	}
	if cfg.FreshnessInterval <= 0 {
		cfg.FreshnessInterval = time.Hour
	}
	if cfg.CheckinInterval <= 0 {
		cfg.CheckinInterval = time.Second
	}
	p := &Publisher{cfg: cfg, log: cfg.Log, now: cfg.Now, changed: make(chan struct{}), waiters: map[string]map[chan struct{}]struct{}{}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.checkins = &checkinBuffer{pending: map[string]store.Checkin{}}
	return p, nil
}

// PublicKey is the key agents pin in indicators.publicKey.
func (p *Publisher) PublicKey() ed25519.PublicKey { return p.cfg.Key.Public().(ed25519.PublicKey) }

// Status describes the published document.
type Status struct {
	Sequence    int64     `json:"sequence"`
	Version     string    `json:"version"`
	GeneratedAt time.Time `json:"generatedAt"`
	Indicators  int       `json:"indicators"`
	Bytes       int       `json:"bytes"`
	GzipBytes   int       `json:"gzipBytes"`
	Warnings    []string  `json:"warnings"`
	PublicKey   string    `json:"publicKey"`
	Served      int64     `json:"served"`
}

// Status reports the current document.
func (p *Publisher) Status() Status {
	st := Status{PublicKey: base64.StdEncoding.EncodeToString(p.PublicKey()), Served: p.served.Load(), Warnings: []string{}}
	if w := p.warnings.Load(); w != nil {
		st.Warnings = *w
	}
	if c := p.cur.Load(); c != nil {
		st.Sequence, st.Version, st.GeneratedAt, st.Indicators, st.Bytes, st.GzipBytes = c.seq, c.version, c.generatedAt, c.count, len(c.body), len(c.gz)
	}
	return st
}

// Publish rebuilds the feed from the store; when its content changed it
// becomes the next sequence, and every held long poll gets it at once.
// Call it after every change to tags, indicators, custom apps or settings.
func (p *Publisher) Publish(ctx context.Context) (Status, error) {
	p.publishMu.Lock()
	defer p.publishMu.Unlock()
	cat, err := Catalog(ctx, p.cfg.Store, p.cfg.Catalog)
	if err != nil {
		return Status{}, fmt.Errorf("feed: %w", err)
	}
	c, err := Build(ctx, p.cfg.Store, cat, p.now())
	if err != nil {
		return Status{}, fmt.Errorf("feed: %w", err)
	}
	w := c.Warnings
	p.warnings.Store(&w)
	doc, made, err := p.cfg.Store.PublishFeed(ctx, c.Version, len(c.Indicators), c.Body)
	if err != nil {
		return Status{}, fmt.Errorf("feed: publish: %w", err)
	}
	if err := p.load(doc); err != nil {
		return Status{}, err
	}
	if made {
		p.log.Info("indicator feed published", "sequence", doc.Sequence, "version", doc.Version, "indicators", doc.Indicators, "bytes", len(doc.Body))
	}
	return p.Status(), nil
}

// load makes a stored document current unless a newer one already is.
func (p *Publisher) load(doc store.FeedDocument) error {
	if c := p.cur.Load(); c != nil && c.seq >= doc.Sequence {
		return nil
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(doc.Body)
	if err := zw.Close(); err != nil {
		return err
	}
	pub := &published{
		seq: doc.Sequence, version: doc.Version, generatedAt: doc.GeneratedAt, count: doc.Indicators,
		body: doc.Body, gz: gz.Bytes(), etag: `"` + doc.Version + `"`,
		sig: "ed25519=" + base64.StdEncoding.EncodeToString(ed25519.Sign(p.cfg.Key, doc.Body)),
	}
	p.sign(pub)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.cur.Load(); c != nil && c.seq >= doc.Sequence {
		return nil
	}
	p.cur.Store(pub)
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

func (p *Publisher) sign(pub *published) {
	now := p.now()
	pub.fresh = indicators.SignFreshness(p.cfg.Key, uint64(pub.seq), pub.version, now).String()
	pub.freshAt = now
}

// resign replaces the current document's freshness proof.
func (p *Publisher) resign() {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cur.Load()
	if c == nil {
		return
	}
	n := *c
	p.sign(&n)
	p.cur.Store(&n)
}

// current returns the published document and the channel closed when the
// next one is loaded.
func (p *Publisher) current() (*published, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur.Load(), p.changed
}

// Run keeps the feed current until ctx ends: it loads sequences other
// replicas made, rebuilds when a custom indicator expires, re-signs the
// freshness proof and writes buffered check-ins. Call Publish once first.
func (p *Publisher) Run(ctx context.Context) error {
	refresh := time.NewTicker(p.cfg.RefreshInterval)
	defer refresh.Stop()
	fresh := time.NewTicker(p.cfg.FreshnessInterval / 2)
	defer fresh.Stop()
	checkin := time.NewTicker(p.cfg.CheckinInterval)
	defer checkin.Stop()
	expiry := p.expiryTimer(ctx)
	defer func() { expiry.Stop() }()
	for {
		select {
		case <-ctx.Done():
			p.flushCheckins(context.WithoutCancel(ctx))
			return nil
		case <-refresh.C:
			seq, err := p.cfg.Store.LatestFeedSequence(ctx)
			if c := p.cur.Load(); err == nil && (c == nil || seq > c.seq) {
				if doc, err := p.cfg.Store.LatestFeed(ctx); err == nil {
					if err := p.load(doc); err != nil {
						p.log.Error("feed: cannot load a new sequence", "err", err)
					}
				}
			}
		case <-fresh.C:
			if c := p.cur.Load(); c != nil && p.now().Sub(c.freshAt) >= p.cfg.FreshnessInterval/2 {
				p.resign()
			}
		case <-checkin.C:
			p.flushCheckins(ctx)
		case <-expiry.C:
			if _, err := p.Publish(ctx); err != nil {
				p.log.Error("feed: rebuild after an indicator expired failed", "err", err)
			}
			expiry = p.expiryTimer(ctx)
		}
	}
}

// expiryTimer fires at the next indicator expiry, or within an hour.
func (p *Publisher) expiryTimer(ctx context.Context) *time.Timer {
	d := time.Hour
	if next := nextExpiry(ctx, p.cfg.Store, p.now()); !next.IsZero() {
		d = min(d, max(time.Second, next.Sub(p.now())+time.Second))
	}
	return time.NewTimer(d)
}

// Kick wakes the held polls of a device (after it was revoked), so they
// end with a refusal instead of being answered later.
func (p *Publisher) Kick(deviceID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch := range p.waiters[deviceID] {
		close(ch)
	}
	delete(p.waiters, deviceID)
}

func (p *Publisher) addWaiter(deviceID string) chan struct{} {
	ch := make(chan struct{})
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.waiters[deviceID]
	if m == nil {
		m = map[chan struct{}]struct{}{}
		p.waiters[deviceID] = m
	}
	m[ch] = struct{}{}
	return ch
}

func (p *Publisher) removeWaiter(deviceID string, ch chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.waiters[deviceID]; m != nil {
		delete(m, ch)
		if len(m) == 0 {
			delete(p.waiters, deviceID)
		}
	}
}

// checkinBuffer keeps the newest check-in per device until the next write.
type checkinBuffer struct {
	mu      sync.Mutex
	pending map[string]store.Checkin
}

func (b *checkinBuffer) add(c store.Checkin) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.pending[c.DeviceID]; ok && old.Known && !c.Known {
		// A request without the header says nothing about the agent.
		c.Known, c.AgentVersion, c.OSPlatform, c.OSVer, c.Sequence = true, old.AgentVersion, old.OSPlatform, old.OSVer, old.Sequence
	}
	b.pending[c.DeviceID] = c
}

func (b *checkinBuffer) take() []store.Checkin {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]store.Checkin, 0, len(b.pending))
	for _, c := range b.pending {
		out = append(out, c)
	}
	clear(b.pending)
	return out
}

func (p *Publisher) flushCheckins(ctx context.Context) {
	cs := p.checkins.take()
	if err := p.cfg.Store.SaveCheckins(ctx, cs); err != nil && ctx.Err() == nil {
		p.log.Error("feed: check-ins not saved", "devices", len(cs), "err", err)
	}
}

// FlushCheckins writes buffered check-ins now (tests, shutdown).
func (p *Publisher) FlushCheckins(ctx context.Context) { p.flushCheckins(ctx) }
