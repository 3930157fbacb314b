package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/filter"
	"github.com/netward/netward/indicators"
	"github.com/netward/netward/internal/osinfo"
	"github.com/netward/netward/internal/version"
	"github.com/netward/netward/telemetry"
)

// indicatorStoreFile is the last-good store's file in the data directory.
const indicatorStoreFile = "indicators.db"

// maxLoggedProblems bounds the problems logged per loaded set; the rest are
// counted (`netward indicators validate` lists them all).
const maxLoggedProblems = 20

// indicatorsState is the indicators component: the sync that follows the
// source, and the set in force (kept to recompile it when an indicator
// expires, and for status).
type indicatorsState struct {
	sync atomic.Pointer[indicators.Sync]
	// fileInterval overrides the file:// poll interval (tests).
	fileInterval time.Duration

	mu         sync.Mutex // serialises policy swaps from the sync and the expiry timer
	cur        *indicators.Update
	stats      indicators.Stats
	nextExpiry time.Time
	compiledAt time.Time
	wake       chan struct{} // nextExpiry changed

	// Freshness reporting (watchFreshness): since when the feed set is
	// stale (zero: it is not), and when its stale record was last emitted.
	freshMu     sync.Mutex
	staleSince  time.Time
	staleRecord time.Time
	// freshEvery overrides freshCheck (tests).
	freshEvery time.Duration
}

// freshCheck is how often the agent looks whether the feed set went stale
// (or fresh again); staleRepeat how often the stale record is repeated
// while it lasts, so a console reading any hour's chunks sees it.
const (
	freshCheck  = time.Minute
	staleRepeat = time.Hour
)

// indicatorReport is the indicators part of `netward status`.
type indicatorReport struct {
	// Source is the configured indicators.source.
	Source string
	// Version, FetchedAt and FromStore describe the set in force: FromStore
	// is true while it is the stored last-good set restored at start.
	Version   string
	FetchedAt time.Time
	FromStore bool
	// Counts are the indicators in force by action and type, the expired
	// ones, the http-only Url indicators, and the problems of the set
	// (Errors: rejected entries; Warnings).
	Counts indicators.Stats
	// CompiledAt is when the active policy was built (load or expiry).
	CompiledAt time.Time
	// NextExpiry is when the next indicator in force expires (zero: none).
	NextExpiry time.Time
	// LastCheck is when the source last answered; LastError, LastErrorAt
	// and Failures describe failed fetches since then.
	LastCheck   time.Time
	LastError   string
	LastErrorAt time.Time
	Failures    int
	// Sequence, FreshAt, Stale and FreshnessError are the feed's rollback
	// floor and freshness (CONTRACT §5; https feeds only).
	Sequence       uint64
	FreshAt        time.Time
	Stale          bool
	FreshnessError string
}

// indicatorStatus reports the indicator set in force and the sync's state.
func (a *Agent) indicatorStatus() indicatorReport {
	st := indicatorReport{Source: a.cfg.Indicators.Source}
	if s := a.ind.sync.Load(); s != nil {
		ss := s.Status()
		st.LastCheck, st.LastError, st.LastErrorAt, st.Failures = ss.LastCheck, ss.LastError, ss.LastErrorAt, ss.Failures
		st.Sequence, st.FreshAt, st.Stale, st.FreshnessError = ss.Sequence, ss.FreshAt, ss.Stale, ss.FreshnessError
	}
	a.ind.mu.Lock()
	defer a.ind.mu.Unlock()
	if u := a.ind.cur; u != nil {
		// A restored set stops being "from the store" once the source has
		// answered, also when it answered "unchanged" (304, same file).
		st.Version, st.FetchedAt, st.FromStore = u.Version, u.FetchedAt, u.FromStore && st.LastCheck.IsZero()
	}
	st.Counts = a.ind.stats
	st.CompiledAt = a.ind.compiledAt
	st.NextExpiry = a.ind.nextExpiry
	return st
}

// startIndicators enforces the last good set from the store before anything
// touches the network, then follows indicators.source. A corrupt store is
// moved aside (logged) and the agent continues with what the source gives.
func (a *Agent) startIndicators(ctx context.Context, g *errgroup.Group) error {
	ic := a.cfg.Indicators
	log := a.log.With("component", "indicators")
	if ic.Source == "" {
		log.Warn("no indicators.source configured: no indicator is enforced")
		return nil
	}
	opts, err := a.syncOptions(log)
	if err != nil {
		return err
	}
	store, err := indicators.OpenStore(indicators.StoreConfig{Path: filepath.Join(a.cfg.DataDir, indicatorStoreFile), Log: log, Now: a.now})
	if err != nil {
		return err
	}
	g.Go(func() error {
		<-ctx.Done()
		return store.Close()
	})
	a.ind.wake = make(chan struct{}, 1)
	opts.Store = store
	opts.Apply = func(u indicators.Update) { a.applyIndicators(log, u) }
	s, err := indicators.NewSync(opts)
	if err != nil {
		return err
	}
	a.ind.sync.Store(s)
	a.setReload(s.Reload) // `netward reload` (admin): read the source now
	// The stored set is in force before Sync.Run opens any socket.
	switch ok, err := s.Restore(); {
	case err != nil:
		log.Warn("stored indicator set not used; waiting for the source", "err", err)
	case !ok:
		log.Info("no stored indicator set; nothing is enforced until the source answers", "source", ic.Source)
	}
	g.Go(func() error { return s.Run(ctx) })
	g.Go(func() error { return a.expireIndicators(ctx, log) })
	if indicators.IsFeedSource(ic.Source) {
		g.Go(func() error { return a.watchFreshness(ctx, log) })
	}
	return nil
}

// feedSource reports whether indicators.source is an https feed (the
// freshness rules apply to it).
func (a *Agent) feedSource() bool { return indicators.IsFeedSource(a.cfg.Indicators.Source) }

// watchFreshness checks every freshCheck whether the feed set went stale.
func (a *Agent) watchFreshness(ctx context.Context, log *slog.Logger) error {
	every := a.ind.freshEvery
	if every <= 0 {
		every = freshCheck
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.checkFreshness(log)
		}
	}
}

// checkFreshness reports a change in the feed set's freshness (CONTRACT §5):
// going stale is logged, listed in `netward status` errors and recorded in
// telemetry (IndicatorSetStale, repeated hourly while it lasts); a proof
// arriving again is logged and recorded (IndicatorSetFresh). The set stays in
// force throughout: a stale set still protects better than none.
func (a *Agent) checkFreshness(log *slog.Logger) {
	s := a.ind.sync.Load()
	if s == nil {
		return
	}
	st := s.Status()
	now := a.now()
	a.ind.freshMu.Lock()
	was := !a.ind.staleSince.IsZero()
	var action string
	switch {
	case st.Stale && !was:
		a.ind.staleSince, a.ind.staleRecord = now, now
		action = telemetry.ActionIndicatorSetStale
	case st.Stale && now.Sub(a.ind.staleRecord) >= staleRepeat:
		a.ind.staleRecord = now
		action = telemetry.ActionIndicatorSetStale
	case !st.Stale && was:
		a.ind.staleSince, a.ind.staleRecord = time.Time{}, time.Time{}
		action = telemetry.ActionIndicatorSetFresh
	}
	a.ind.freshMu.Unlock()
	if action == "" {
		return
	}
	a.emit(telemetry.Record{ActionType: action, PolicySequence: st.Sequence, PolicyVersion: st.Version, PolicyFreshAt: st.FreshAt})
	switch {
	case action == telemetry.ActionIndicatorSetFresh:
		log.Info("indicator set is current again: the console proved it", "version", st.Version, "sequence", st.Sequence, "freshAt", st.FreshAt)
	case !was:
		err := fmt.Errorf("indicator set %s (sequence %d) is stale: the console last proved it current at %s, more than indicators.maxAgeHours (%d) ago; it stays in force (%s)",
			st.Version, st.Sequence, freshText(st.FreshAt), a.cfg.Indicators.MaxAgeHours, staleReason(st))
		log.Warn(err.Error())
		a.noteError("indicators", err)
	}
}

func freshText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// staleReason says what a stale set usually means.
func staleReason(st indicators.SyncStatus) string {
	switch {
	case st.LastError != "":
		return "the feed is failing: " + st.LastError
	case st.FreshnessError != "":
		return "the feed answers but proves nothing: " + st.FreshnessError
	}
	return "the feed answers with an old proof: a frozen or replayed path between console and agent, or a console that stopped re-signing"
}

// syncOptions turns the config into a SyncConfig (without store and Apply).
// A bad public key or CA file is a configuration error: starting without the
// signature check or with the wrong roots would silently weaken the feed.
// An unreadable token file is not: the stored set stays enforced and the
// feed's refusal shows in status.
func (a *Agent) syncOptions(log *slog.Logger) (indicators.SyncConfig, error) {
	ic := a.cfg.Indicators
	c := indicators.SyncConfig{
		Source:            ic.Source,
		LongPoll:          time.Duration(ic.LongPollSeconds) * time.Second,
		FileInterval:      a.ind.fileInterval,
		AllowDefaultRoute: ic.AllowDefaultRoute,
		MaxDropPercent:    indicators.DefaultMaxDropPercent,
		MaxAge:            time.Duration(ic.MaxAgeHours) * time.Hour,
		// The check-in every feed request carries (CONTRACT §5).
		Agent: indicators.AgentInfo{Version: version.Get().Version, Platform: osinfo.Platform(), OSVersion: osinfo.Version()},
		// A refused set or an unreachable source is listed under "errors"
		// in `netward status`, besides the indicators' own lastError.
		OnError: func(err error) { a.noteError("indicators", err) },
		// The feed's sockets carry the agent's mark (exempt from DNS capture
		// and inspection), and so do its resolver's queries.
		Control: upstreamControl(a.cfg.DNS.Capture),
		Log:     log,
		Now:     a.now,
	}
	if d := ic.MaxDropPercent; d != nil {
		c.MaxDropPercent = *d
		if *d == 0 {
			c.MaxDropPercent = indicators.NoInvalidEntries
		}
	}
	if ic.TokenFile != "" {
		b, err := os.ReadFile(ic.TokenFile)
		if err != nil {
			log.Error("device token unreadable; fetching the feed without it", "tokenFile", ic.TokenFile, "err", err)
		} else {
			c.Token = strings.TrimSpace(string(b))
		}
	}
	if ic.PublicKey != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(ic.PublicKey))
		if err != nil || len(k) != ed25519.PublicKeySize {
			return c, fmt.Errorf("key \"indicators.publicKey\": not a base64 Ed25519 public key (32 bytes); copy the key netward-console prints")
		}
		c.PublicKey = k
	}
	if ic.CAFile != "" {
		pem, err := os.ReadFile(ic.CAFile)
		if err != nil {
			return c, fmt.Errorf("key \"indicators.caFile\": %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return c, fmt.Errorf("key \"indicators.caFile\": %s holds no PEM certificate", ic.CAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// applyIndicators makes a new set the policy in force: policy and settings
// are published in one swap (no query sees the new policy with the old
// settings), the bypasses of indicators that are no longer Warn are dropped
// in the same call, and the expiry timer is re-armed.
func (a *Agent) applyIndicators(log *slog.Logger, u indicators.Update) {
	now := a.now()
	st := u.Set.Stats(now)
	a.ind.mu.Lock()
	a.dp.Set(u.Policy, a.feedSettings(u.Set.Settings))
	a.pruneBypasses(u.Policy)
	kept := u
	if u.NextExpiry.IsZero() {
		// Nothing will expire, so the set is never compiled again: keep
		// only its header. The policy holds the rules; the parsed
		// indicators (a million of them is ~130 MB) can go.
		kept.Set = &indicators.Set{Name: u.Set.Name, Version: u.Set.Version, GeneratedAt: u.Set.GeneratedAt, Settings: u.Set.Settings}
	}
	a.ind.cur = &kept
	a.ind.stats = st
	a.ind.nextExpiry = u.NextExpiry
	a.ind.compiledAt = now
	a.ind.mu.Unlock()
	select {
	case a.ind.wake <- struct{}{}:
	default:
	}
	log.Info("indicator set loaded", "source", u.Source, "version", u.Version, "fromStore", u.FromStore,
		"indicators", st.Indicators, "byAction", st.ByAction, "byType", st.ByType, "httpOnly", st.HTTPOnly,
		"expired", st.Expired, "rejected", st.Errors, "warnings", st.Warnings, "nextExpiry", expiryText(u.NextExpiry))
	for i, p := range u.Set.Problems {
		if i == maxLoggedProblems {
			log.Warn("more indicator problems not logged; run `netward indicators validate` on the source for all of them",
				"more", len(u.Set.Problems)-i)
			break
		}
		log.Warn("indicator problem", "at", p.Position.String(), "severity", p.Severity, "problem", p.Message)
	}
	if len(u.Set.Indicators) >= bigSet {
		// Loading a set leaves several times its live size as garbage (the
		// body, the parse, the build). Give it back to the OS now rather
		// than at the runtime's leisure: an endpoint agent's RSS should be
		// its live size. Loads are rare (a changed file, a new feed
		// version), so the extra collection is too; below bigSet the
		// garbage is small and a restart's enforcement is not delayed.
		debug.FreeOSMemory()
	}
	a.limitMemory(log)
}

// bigSet is the set size from which a load returns freed memory at once.
// (Issue 21: at 100,000 the 83,808-name StevenBlack list left 30 MB of
// garbage resident.)
const bigSet = 10_000

// feedSettings merges the feed's settings with the local config: a mode the
// feed does not set is the config's.
func (a *Agent) feedSettings(s indicators.Settings) filter.Settings {
	mode, _ := filter.ParseMode(a.cfg.Mode)
	if s.Mode != "" {
		if m, ok := filter.ParseMode(s.Mode); ok {
			mode = m
		}
	}
	return filter.Settings{
		Mode: mode, ConvertWarnToBlock: s.ConvertWarnToBlock,
		WarnRedirectURL: s.WarnRedirectURL, BlockRedirectURL: s.BlockRedirectURL,
		BypassDuration: time.Duration(s.BypassDurationHours * float64(time.Hour)),
	}
}

// expireIndicators recompiles the set in force at the instant its next
// indicator expires (CONTRACT §1: it stops applying at expirationTime), with
// a timer re-armed on every new set, never by polling.
func (a *Agent) expireIndicators(ctx context.Context, log *slog.Logger) error {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		a.ind.mu.Lock()
		next := a.ind.nextExpiry
		a.ind.mu.Unlock()
		var fire <-chan time.Time
		if !next.IsZero() {
			t.Reset(max(next.Sub(a.now()), 0))
			fire = t.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.ind.wake:
			t.Stop()
			continue
		case <-fire:
		}
		a.recompileIndicators(log)
	}
}

// recompileIndicators compiles the set in force again, leaving out what has
// expired.
func (a *Agent) recompileIndicators(log *slog.Logger) {
	a.ind.mu.Lock()
	u := a.ind.cur
	if u == nil || a.ind.nextExpiry.IsZero() {
		a.ind.mu.Unlock()
		return
	}
	// Compile at the expiry instant at the earliest, so a timer that fires
	// a hair early still drops the expired indicator.
	now := a.now()
	if now.Before(a.ind.nextExpiry) {
		now = a.ind.nextExpiry
	}
	p, next, err := u.Set.Compile(now)
	if err != nil { // cannot happen: the same rules compiled before, minus some
		a.ind.nextExpiry = time.Time{}
		a.ind.mu.Unlock()
		a.log.Error("recompiling the indicator set after an expiry failed; the previous policy stays", "err", err)
		return
	}
	a.dp.SetPolicy(p)
	a.pruneBypasses(p)
	a.ind.stats = u.Set.Stats(now)
	a.ind.nextExpiry = next
	a.ind.compiledAt = a.now()
	st := a.ind.stats
	a.ind.mu.Unlock()
	log.Info("indicators expired; policy recompiled", "version", u.Version, "indicators", st.Indicators,
		"expired", st.Expired, "nextExpiry", expiryText(next))
}

// expiryText is an expiry instant for the log ("never" for none).
func expiryText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
