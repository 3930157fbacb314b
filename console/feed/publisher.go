package feed

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
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
	// LoadKey, when set, is asked every RefreshInterval for the signing
	// key, so a key rotated by another replica or by
	// `netward-console feed rotate-key` is used within seconds.
	LoadKey func(context.Context) (ed25519.PrivateKey, error)
	// MaxPollsPerDevice caps the long polls one device holds (default 2;
	// a newer one ends the oldest with its answer now); MaxHeldPolls caps
	// all held polls (default 20,000; beyond, 503 with Retry-After).
	MaxPollsPerDevice, MaxHeldPolls int
}

// Publisher keeps the current feed document in memory and serves it.
type Publisher struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	key     atomic.Pointer[ed25519.PrivateKey]
	cur     atomic.Pointer[published]
	mu      sync.Mutex
	changed chan struct{} // closed and replaced when a new sequence is loaded
	waiters map[string][]*waiter
	held    int // polls in waiters

	superseded, pollsRefused atomic.Int64

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
	if cfg.MaxPollsPerDevice <= 0 {
		cfg.MaxPollsPerDevice = 2
	}
	if cfg.MaxHeldPolls <= 0 {
		cfg.MaxHeldPolls = 20000
	}
	p := &Publisher{cfg: cfg, log: cfg.Log, now: cfg.Now, changed: make(chan struct{}), waiters: map[string][]*waiter{}}
	key := cfg.Key
	p.key.Store(&key)
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
func (p *Publisher) PublicKey() ed25519.PublicKey {
	return (*p.key.Load()).Public().(ed25519.PublicKey)
}

// SetKey makes key the signing key from now on: the current document and
// its freshness proof are signed again with it.
func (p *Publisher) SetKey(key ed25519.PrivateKey) {
	if len(key) != ed25519.PrivateKeySize {
		return
	}
	p.key.Store(&key)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.cur.Load(); c != nil {
		n := *c
		n.sig = "ed25519=" + base64.StdEncoding.EncodeToString(ed25519.Sign(key, n.body))
		p.sign(&n)
		p.cur.Store(&n)
	}
}

// RotateKey makes a new signing key, stores it (every replica takes it up
// within RefreshInterval) and signs with it from now on. Agents verify with
// the public key they were given: until each gets the new one (netward
// enroll again, or indicators.publicKey), it refuses the feed and keeps its
// set — docs/console.md "Rotating the signing key".
func (p *Publisher) RotateKey(ctx context.Context) (ed25519.PublicKey, error) {
	key, err := RotateSigningKey(ctx, p.cfg.Store)
	if err != nil {
		return nil, err
	}
	p.SetKey(key)
	p.log.Warn("feed signing key rotated; agents need the new public key", "publicKey", base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	return key.Public().(ed25519.PublicKey), nil
}

// SigningKeyName is the store secret holding the feed's Ed25519 seed; in
// the database, so every replica signs with one key.
const SigningKeyName = "feed-signing-key"

// SigningKey returns the stored signing key, making one the first time.
func SigningKey(ctx context.Context, st *store.Store) (ed25519.PrivateKey, error) {
	seed, err := st.Secret(ctx, SigningKeyName, newSeed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("feed signing key: %v (%d bytes)", err, len(seed))
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// RotateSigningKey replaces the stored signing key with a new one.
func RotateSigningKey(ctx context.Context, st *store.Store) (ed25519.PrivateKey, error) {
	seed, err := newSeed()
	if err != nil {
		return nil, err
	}
	if err := st.RotateSecret(ctx, SigningKeyName, seed); err != nil {
		return nil, fmt.Errorf("feed signing key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func newSeed() ([]byte, error) {
	b := make([]byte, ed25519.SeedSize)
	_, err := rand.Read(b)
	return b, err
}

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
	// HeldPolls are long polls held now; PollsSuperseded the ones ended
	// early because their device opened more than MaxPollsPerDevice;
	// PollsRefused the ones answered 503 past MaxHeldPolls.
	HeldPolls       int   `json:"heldPolls"`
	PollsSuperseded int64 `json:"pollsSuperseded"`
	PollsRefused    int64 `json:"pollsRefused"`
}

// Status reports the current document.
func (p *Publisher) Status() Status {
	st := Status{PublicKey: base64.StdEncoding.EncodeToString(p.PublicKey()), Served: p.served.Load(), Warnings: []string{},
		PollsSuperseded: p.superseded.Load(), PollsRefused: p.pollsRefused.Load()}
	p.mu.Lock()
	st.HeldPolls = p.held
	p.mu.Unlock()
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
	// The content is built inside the store's publishing section, so it
	// includes every change committed on any replica before it.
	doc, made, err := p.cfg.Store.PublishFeed(ctx, func(ctx context.Context) (store.FeedBuild, error) {
		cat, err := Catalog(ctx, p.cfg.Store, p.cfg.Catalog)
		if err != nil {
			return store.FeedBuild{}, err
		}
		c, err := Build(ctx, p.cfg.Store, cat, p.now())
		if err != nil {
			return store.FeedBuild{}, err
		}
		w := c.Warnings
		p.warnings.Store(&w)
		return store.FeedBuild{Version: c.Version, Indicators: len(c.Indicators), Body: c.Body}, nil
	})
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
	key := p.key.Load()
	pub := &published{
		seq: doc.Sequence, version: doc.Version, generatedAt: doc.GeneratedAt, count: doc.Indicators,
		body: doc.Body, gz: gz.Bytes(), etag: `"` + doc.Version + `"`,
		sig: "ed25519=" + base64.StdEncoding.EncodeToString(ed25519.Sign(*key, doc.Body)),
	}
	p.sign(pub)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.cur.Load(); c != nil && c.seq >= doc.Sequence {
		return nil
	}
	if k := p.key.Load(); k != key { // rotated meanwhile (SetKey re-signed the old document)
		pub.sig = "ed25519=" + base64.StdEncoding.EncodeToString(ed25519.Sign(*k, doc.Body))
		p.sign(pub)
	}
	p.cur.Store(pub)
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

func (p *Publisher) sign(pub *published) {
	now := p.now()
	pub.fresh = indicators.SignFreshness(*p.key.Load(), uint64(pub.seq), pub.version, now).String()
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
	// Sequences published by other replicas arrive through the database
	// (PostgreSQL NOTIFY) at once; the refresh tick stays as the fallback.
	notified := make(chan struct{}, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		_ = p.cfg.Store.WatchFeed(wctx, func(seq int64) {
			if c := p.cur.Load(); seq != 0 && c != nil && seq <= c.seq {
				return // this replica's own publication, already loaded
			}
			select {
			case notified <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { stopWatch(); <-watched }()
	for {
		select {
		case <-ctx.Done():
			p.flushCheckins(context.WithoutCancel(ctx))
			return nil
		case <-notified:
			p.refresh(ctx)
		case <-refresh.C:
			p.reloadKey(ctx)
			p.refresh(ctx)
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

// refresh loads a sequence another replica made, when the store has one
// above the current.
func (p *Publisher) refresh(ctx context.Context) {
	seq, err := p.cfg.Store.LatestFeedSequence(ctx)
	if c := p.cur.Load(); err == nil && (c == nil || seq > c.seq) {
		if doc, err := p.cfg.Store.LatestFeed(ctx); err == nil {
			if err := p.load(doc); err != nil {
				p.log.Error("feed: cannot load a new sequence", "err", err)
			}
		}
	}
}

// reloadKey takes up a signing key rotated elsewhere.
func (p *Publisher) reloadKey(ctx context.Context) {
	if p.cfg.LoadKey == nil {
		return
	}
	key, err := p.cfg.LoadKey(ctx)
	if err != nil || len(key) != ed25519.PrivateKeySize || key.Equal(*p.key.Load()) {
		return
	}
	p.SetKey(key)
	p.log.Warn("feed signing key changed in the store (rotated); signing with the new key", "publicKey", base64.StdEncoding.EncodeToString(p.PublicKey()))
}

// expiryTimer fires at the next indicator expiry, or within an hour.
func (p *Publisher) expiryTimer(ctx context.Context) *time.Timer {
	d := time.Hour
	if next := nextExpiry(ctx, p.cfg.Store, p.now()); !next.IsZero() {
		d = min(d, max(time.Second, next.Sub(p.now())+time.Second))
	}
	return time.NewTimer(d)
}

// waiter is one held long poll.
type waiter struct {
	ch chan struct{} // closed to wake it
	// superseded: woken because its device opened a newer poll past
	// MaxPollsPerDevice; it answers now instead of waiting on.
	superseded bool
}

// errPollsFull: MaxHeldPolls polls are held.
var errPollsFull = errors.New("the console holds as many long polls as it is configured to (feed.maxHeldPolls); retry later")

// Kick wakes the held polls of a device (after it was revoked or its token
// replaced), so they end with a refusal instead of being answered later.
func (p *Publisher) Kick(deviceID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.waiters[deviceID] {
		close(w.ch)
	}
	p.held -= len(p.waiters[deviceID])
	delete(p.waiters, deviceID)
}

// addWaiter holds a poll for deviceID: past MaxPollsPerDevice the oldest
// of the device's polls is superseded; past MaxHeldPolls, errPollsFull.
func (p *Publisher) addWaiter(deviceID string) (*waiter, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.waiters[deviceID]
	if len(list) >= p.cfg.MaxPollsPerDevice {
		old := list[0]
		old.superseded = true
		close(old.ch)
		list = list[1:]
		p.held--
		p.superseded.Add(1)
	} else if p.held >= p.cfg.MaxHeldPolls {
		p.pollsRefused.Add(1)
		return nil, errPollsFull
	}
	w := &waiter{ch: make(chan struct{})}
	p.waiters[deviceID] = append(list, w)
	p.held++
	return w, nil
}

// removeWaiter drops a poll that ended by itself (answered, timed out).
func (p *Publisher) removeWaiter(deviceID string, w *waiter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.waiters[deviceID]
	for i, x := range list {
		if x == w {
			list = append(list[:i:i], list[i+1:]...)
			p.held--
			break
		}
	}
	if len(list) == 0 {
		delete(p.waiters, deviceID)
	} else {
		p.waiters[deviceID] = list
	}
}

// isSuperseded reads w.superseded under the lock that wrote it.
func (p *Publisher) isSuperseded(w *waiter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return w.superseded
}

// offlineAfter is the silence after which a device's next check-in starts a
// new run (Device.OnlineSince): an agent long-polls for at most MaxWait and
// asks again at once, and retries a failed request within its longest
// back-off (indicators.DefaultMaxBackoff)
// (a stale endpoint that refuses the feed still checks in that often), so
// two of the longer of the two and a write interval is a device that could
// not reach the console.
func (p *Publisher) offlineAfter() time.Duration {
	return 2*max(p.cfg.MaxWait, indicators.DefaultMaxBackoff) + p.cfg.CheckinInterval
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
	if err := p.cfg.Store.SaveCheckins(ctx, cs, p.offlineAfter()); err != nil {
		if ctx.Err() == nil {
			p.log.Error("feed: check-ins not saved", "devices", len(cs), "err", err)
		}
		return
	}
	// A device holding a sequence above the published one (this console
	// was restored from a backup) refuses every document below it as a
	// rollback: publish again above it at once (store.PublishFeed).
	cur := p.cur.Load()
	if cur == nil {
		return
	}
	for _, c := range cs {
		if c.Known && c.Sequence > cur.seq && c.Sequence <= cur.seq+1_000_000 {
			if _, err := p.Publish(ctx); err != nil && ctx.Err() == nil {
				p.log.Error("feed: cannot publish above the sequence devices hold", "err", err)
			}
			return
		}
	}
}

// FlushCheckins writes buffered check-ins now (tests, shutdown).
func (p *Publisher) FlushCheckins(ctx context.Context) { p.flushCheckins(ctx) }
