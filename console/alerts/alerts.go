// Package alerts raises the console's alerts on ingest — an Unsanctioned
// app accessed (a Block of its domain), and an Unsanctioned app not
// blocked (a successful connection or DNS answer for its domain after the
// device checked in past the tag's publication: a stale or misconfigured
// endpoint) — deduplicated per device × app × hour in the store, and
// delivers new ones to webhooks (JSON, HMAC-SHA256 signed) and syslog
// receivers (RFC 5424 over TCP or UDP) from a durable outbox, retried with
// back-off.
package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/telemetry"
)

// Config configures the Alerts.
type Config struct {
	Store *store.Store
	Log   *slog.Logger
	Now   func() time.Time
	// Grace is how long after a tag's publication a successful connection
	// is still forgiven (the agent's poll round trip); default 10 s.
	Grace time.Duration
	// Refresh is how often the Unsanctioned apps are re-read (default 2 s).
	Refresh time.Duration
	// MaxAttempts per delivery before it is given up (default 10); back-off
	// doubles from Backoff (default 2 s) up to 10 minutes.
	MaxAttempts int
	Backoff     time.Duration
	// Poll is how often the outbox is read besides the wake-ups of new
	// alerts (default 1 s).
	Poll time.Duration
	// HTTP posts webhooks (default: 10 s timeout).
	HTTP *http.Client
	// Hostname names the console in syslog messages (default os.Hostname).
	Hostname string
}

// Alerts is the ingest hook and the delivery loop.
type Alerts struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	wake chan struct{}

	mu     sync.Mutex
	tags   map[string]tagInfo
	loaded time.Time

	raised, delivered, failedAttempts atomic.Int64
}

// tagInfo is an Unsanctioned app: when its tag was set and the first feed
// sequence that carries it (zero until published).
type tagInfo struct {
	taggedAt    time.Time
	sequence    int64
	publishedAt time.Time
	// checked is the newest sequence looked through for the tag: until a
	// newer one is published, the documents are not read again.
	checked int64
}

// New checks the config; it starts nothing.
func New(cfg Config) (*Alerts, error) {
	if cfg.Store == nil {
		return nil, errors.New("alerts: Store is required")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	a := &Alerts{cfg: cfg, log: cfg.Log, now: cfg.Now, wake: make(chan struct{}, 1)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Stats counts alerts raised and deliveries since start.
type Stats struct {
	Raised         int64 `json:"raised"`
	Delivered      int64 `json:"delivered"`
	FailedAttempts int64 `json:"failedAttempts"`
}

// Stats returns the counters.
func (a *Alerts) Stats() Stats {
	return Stats{Raised: a.raised.Load(), Delivered: a.delivered.Load(), FailedAttempts: a.failedAttempts.Load()}
}

// unsanctioned returns the Unsanctioned apps, re-read every Refresh (and
// at once after Invalidate).
func (a *Alerts) unsanctioned(ctx context.Context) map[string]tagInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.loaded.IsZero() && a.now().Sub(a.loaded) < a.cfg.Refresh {
		return a.tags
	}
	tags, err := a.cfg.Store.Tags(ctx)
	if err != nil {
		a.log.Error("alerts: tags not read; alerts use the previous list", "err", err)
		return a.tags
	}
	latest, err := a.cfg.Store.LatestFeedSequence(ctx)
	if err != nil {
		a.log.Error("alerts: feed sequence not read; alerts use the previous list", "err", err)
		return a.tags
	}
	out := map[string]tagInfo{}
	for id, t := range tags {
		if t.Tag != "Unsanctioned" {
			continue
		}
		ti := tagInfo{taggedAt: t.UpdatedAt, checked: latest}
		if prev, ok := a.tags[id]; ok && prev.taggedAt.Equal(t.UpdatedAt) && (prev.sequence != 0 || prev.checked == latest) {
			ti = prev // the sequence that carried this tag is known, or no newer one to look at
		} else if seq, at, err := a.cfg.Store.FeedCarrying(ctx, t.UpdatedAt, blocksApp(id)); err == nil {
			ti.sequence, ti.publishedAt = seq, at
		}
		out[id] = ti
	}
	a.tags, a.loaded = out, a.now()
	return out
}

// blocksApp reports whether a feed document blocks app id (the sequence
// carrying its Unsanctioned tag; a document from when it was Monitored
// warns instead).
func blocksApp(id string) func([]byte) bool {
	return func(body []byte) bool {
		var doc struct {
			Indicators []struct {
				Action        string `json:"action"`
				ApplicationID string `json:"applicationId"`
			} `json:"indicators"`
		}
		if json.Unmarshal(body, &doc) != nil {
			return false
		}
		for _, in := range doc.Indicators {
			if in.ApplicationID == id && in.Action == "Block" {
				return true
			}
		}
		return false
	}
}

// Invalidate makes the next chunk re-read the tags (after a tag change).
func (a *Alerts) Invalidate() {
	a.mu.Lock()
	a.loaded = time.Time{}
	a.mu.Unlock()
}

// Chunk implements ingest.Hook.
func (a *Alerts) Chunk(device string) ingest.ChunkHook {
	return &chunk{a: a, device: device, tags: a.unsanctioned(context.Background()), found: map[candKey]*store.Alert{}}
}

type candKey struct {
	kind, app string
	hour      int64
}

type chunk struct {
	a      *Alerts
	device string
	tags   map[string]tagInfo
	found  map[candKey]*store.Alert
	order  []candKey
	// dev is read at the chunk's first not-blocked candidate; devErr says
	// it could not be (the chunk's not-blocked alerts are then skipped).
	dev    *store.Device
	devErr error
}

// device reads the chunk's device once.
func (c *chunk) deviceRow(ctx context.Context) (*store.Device, error) {
	if c.dev == nil && c.devErr == nil {
		d, err := c.a.cfg.Store.Device(ctx, c.device)
		if err != nil {
			c.devErr = err
			c.a.log.Error("alerts: device not read; not-blocked alerts of the chunk skipped", "device", c.device, "err", err)
		} else {
			c.dev = &d
		}
	}
	return c.dev, c.devErr
}

func (c *chunk) Record(r *telemetry.Record, n int64, appID, domain string) {
	if appID == "" {
		return
	}
	ti, ok := c.tags[appID]
	if !ok {
		return
	}
	var kind string
	switch r.ActionType {
	case telemetry.NetworkProtectionBlocked:
		kind = store.AlertUnsanctionedAccess
	case telemetry.ConnectionSuccess, telemetry.DnsQueryResponse, telemetry.NetworkProtectionAudited, telemetry.NetworkProtectionUserBypassEvent:
		// Reached: a connection or an answer, an audit (the device only
		// watches), or a user continuing past a Warn (the device holds a
		// feed where the app is Monitored). Only once the tag was published and the agent had time to take
		// it; whether the device checked in since is known at Stored.
		if ti.publishedAt.IsZero() || !r.Timestamp.After(ti.publishedAt.Add(c.a.cfg.Grace)) {
			return
		}
		// Nor unless the device had checked in since the publication, the
		// grace before the record: one made while it could not reach the
		// console (uploaded when it came back) is no sign of a stale
		// endpoint; one made online before a later gap is.
		dev, err := c.deviceRow(context.Background())
		if err != nil || !dev.CheckedInBetween(ti.publishedAt, r.Timestamp.Add(-c.a.cfg.Grace)) {
			return
		}
		kind = store.AlertUnsanctionedNotBlocked
	default:
		return
	}
	k := candKey{kind, appID, store.HourOf(r.Timestamp)}
	if al := c.found[k]; al != nil {
		al.Occurrences += n
		if r.Timestamp.After(al.LastAt) {
			al.LastAt = r.Timestamp
		}
		if r.Timestamp.Before(al.FirstAt) {
			al.FirstAt = r.Timestamp
		}
		return
	}
	c.found[k] = &store.Alert{Kind: kind, DeviceID: c.device, AppID: appID, FirstAt: r.Timestamp.UTC(), LastAt: r.Timestamp.UTC(), Occurrences: n,
		Domain: domain, User: r.InitiatingProcessAccountName, Process: r.InitiatingProcessFileName, ActionType: r.ActionType}
	c.order = append(c.order, k)
}

func (c *chunk) Stored(ctx context.Context, _ store.ChunkMeta) {
	if len(c.order) == 0 {
		return
	}
	for _, k := range c.order {
		al := c.found[k]
		if al.Kind == store.AlertUnsanctionedNotBlocked {
			dev := c.dev // read at the candidate's first record (Record)
			ti := c.tags[al.AppID]
			// The device must have checked in after the tag was published:
			// an agent that was offline could not know of it.
			if dev.LastSeenAt.Before(ti.publishedAt) {
				continue
			}
			if dev.SequenceHeld < ti.sequence {
				al.Detail = fmt.Sprintf("the device holds feed sequence %d; the tag is in sequence %d, published %s, and the device checked in since: a stale endpoint (it refuses or does not fetch the feed)",
					dev.SequenceHeld, ti.sequence, ti.publishedAt.Format(time.RFC3339))
			} else {
				al.Detail = fmt.Sprintf("the device holds feed sequence %d, which carries the tag, and did not block: check its mode (audit/off) and that netward is protecting it", dev.SequenceHeld)
			}
		} else {
			al.Detail = fmt.Sprintf("%s blocked %s (Unsanctioned) for %s", al.DeviceID, al.Domain, orDash(al.User))
		}
		saved, created, err := c.a.cfg.Store.RaiseAlert(ctx, *al)
		if err != nil {
			c.a.log.Error("alerts: alert not recorded", "kind", al.Kind, "device", al.DeviceID, "app", al.AppID, "err", err)
			continue
		}
		if created {
			c.a.raised.Add(1)
			c.a.log.Info("alert raised", "id", saved.ID, "kind", saved.Kind, "device", saved.DeviceID, "app", saved.AppID)
			select {
			case c.a.wake <- struct{}{}:
			default:
			}
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Run delivers pending alerts until ctx ends.
func (a *Alerts) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Poll)
	defer t.Stop()
	for {
		a.deliverDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-a.wake:
		}
	}
}

func (a *Alerts) deliverDue(ctx context.Context) {
	due, err := a.cfg.Store.DueDeliveries(ctx, a.now(), 100)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("alerts: outbox not read", "err", err)
		}
		return
	}
	for _, d := range due {
		err := a.Send(ctx, d.Destination, d.Alert)
		state, next, msg := store.DeliveryDelivered, a.now(), ""
		if err != nil {
			a.failedAttempts.Add(1)
			msg = err.Error()
			state = store.DeliveryPending
			if d.Attempts+1 >= int64(a.cfg.MaxAttempts) {
				state = store.DeliveryFailed
				a.log.Error("alerts: delivery given up", "alert", d.Alert.ID, "destination", d.Destination.Name, "attempts", d.Attempts+1, "err", err)
			}
			next = a.now().Add(backoff(a.cfg.Backoff, d.Attempts))
		} else {
			a.delivered.Add(1)
		}
		if err := a.cfg.Store.DeliveryResult(ctx, d.Alert.ID, d.Destination.ID, state, next, msg); err != nil && ctx.Err() == nil {
			a.log.Error("alerts: delivery result not saved", "err", err)
		}
	}
}

// backoff doubles from base per attempt, up to 10 minutes, with up to a
// quarter of jitter so receivers coming back are not hit at once.
func backoff(base time.Duration, attempts int64) time.Duration {
	d := base << min(attempts, 20)
	d = min(d, 10*time.Minute)
	return d + time.Duration(rand.Int64N(int64(d/4)+1))
}

// Send delivers one alert to one destination now.
func (a *Alerts) Send(ctx context.Context, d store.Destination, al store.Alert) error {
	switch d.Kind {
	case store.DestWebhook:
		return a.sendWebhook(ctx, d, al)
	case store.DestSyslog:
		return a.sendSyslog(ctx, d, al)
	}
	return fmt.Errorf("destination %q has unknown kind %q", d.Name, d.Kind)
}

// TestAlert is the alert "send test" delivers.
func (a *Alerts) TestAlert() store.Alert {
	now := a.now().UTC()
	return store.Alert{Kind: "test", DeviceID: "netward-test-device", AppID: "netward-test-app", Hour: now.Truncate(time.Hour), FirstAt: now, LastAt: now,
		Occurrences: 1, Domain: "test.example", State: store.AlertNew, Detail: "a test alert from the netward console (send test)"}
}
