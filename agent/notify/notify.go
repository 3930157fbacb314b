// Package notify tells the logged-in user about a block or warning when no
// page can be shown (non-browser apps, HTTPS without the local CA): a desktop
// notification over the session D-Bus on Linux, a toast on Windows. It is
// rate-limited per (name, user) and never blocks the caller: notices are
// queued (bounded) and delivered by Run. When no desktop session can be
// reached the notice is handed to Undelivered, and no notice is attempted
// again for Config.Recheck: on an endpoint nobody is signed in to, the same
// ad and tracker names are blocked all day, and looking for a session bus
// per name cost more than answering the query. Failures are logged once per
// cause per Config.LogInterval, with how many notices were not shown.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// ErrNoSession means no desktop session could be reached.
var ErrNoSession = errors.New("no desktop session to notify")

// Notice is one thing to tell the user.
type Notice struct {
	Name    string // the site
	User    string // the account, "" when unknown (every desktop session)
	Blocked bool   // true: blocked; false: warned (the user may continue)
	App     string
	Reason  string // the indicator title
	// At is when it happened; zero: Notify reads its clock. The DNS fast
	// path's own clock read serves here, one read per blocked answer fewer.
	At time.Time
}

// Summary is the notification's one-line title.
func (n Notice) Summary() string {
	if n.Blocked {
		return "netward blocked " + n.Name
	}
	return "netward: " + n.Name + " needs your confirmation"
}

// Body is the notification text: the site, the reason and what to do.
func (n Notice) Body() string {
	s := n.Name
	if n.App != "" {
		s += " (" + n.App + ")"
	}
	if n.Reason != "" {
		s += ": " + n.Reason
	}
	if n.Blocked {
		return s + ".\nYour organisation does not allow this site."
	}
	return s + ".\nTo continue, run: netward bypass " + n.Name
}

// Backend delivers a notice to the desktop. continueFn, when the backend
// supports actions, is what a click on "Continue" does; it may be nil.
type Backend interface {
	Notify(ctx context.Context, n Notice, continueFn func()) error
}

// Config configures a Notifier.
type Config struct {
	// Backend is the desktop mechanism; nil means DefaultBackend().
	Backend Backend
	// Interval is the minimum time between two notices for the same name and
	// user (default 10 minutes).
	Interval time.Duration
	// MaxKeys bounds the rate-limit table (default 4096).
	MaxKeys int
	// Queue bounds the notices waiting for delivery (default 64); past it
	// notices are dropped and counted.
	Queue int
	// Continue is called when the user clicks Continue on a warning (backends
	// with actions only); it creates the bypass.
	Continue func(n Notice)
	// Undelivered receives the notices no desktop session could show (the
	// ones attempted or queued; not those Notify refused while no session
	// was known).
	Undelivered func(n Notice, err error)
	// Recheck is how long after finding no desktop session notices are not
	// attempted (default 30 s): a user who signs in sees notices again
	// within it.
	Recheck time.Duration
	// LogInterval is the minimum time between two log lines for the same
	// cause of failure (default 10 minutes).
	LogInterval time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

type key struct{ name, user string }

// Notifier rate-limits and delivers notices.
type Notifier struct {
	cfg     Config
	queue   chan Notice
	last    map[key]time.Time // guarded by limiter
	limiter chan struct{}     // one-slot semaphore: Notify is called from many interceptors
	dropped int

	// noSessionUntil (unix nanoseconds): no desktop session was found; until
	// then Notify refuses at once and Run does not attempt queued notices.
	noSessionUntil atomic.Int64
	// notShown counts the notices not shown since the last log line.
	notShown atomic.Int64
	// Run's goroutine only:
	noSessionErr error                // why, for Undelivered
	logged       map[string]time.Time // last log line per cause
}

// New returns a Notifier; Run delivers.
func New(cfg Config) *Notifier {
	if cfg.Backend == nil {
		cfg.Backend = DefaultBackend()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Minute
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 4096
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 64
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 30 * time.Second
	}
	if cfg.LogInterval <= 0 {
		cfg.LogInterval = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{cfg: cfg, queue: make(chan Notice, cfg.Queue), last: map[key]time.Time{}, limiter: make(chan struct{}, 1),
		logged: map[string]time.Time{}}
}

// Notify queues n unless the same name and user were notified within the
// interval, or no desktop session was found within Recheck. It never blocks;
// it reports whether n was queued.
func (n *Notifier) Notify(nt Notice) bool {
	now := nt.At
	if now.IsZero() {
		now = n.cfg.Now()
	}
	if now.UnixNano() < n.noSessionUntil.Load() {
		n.notShown.Add(1)
		return false
	}
	k := key{nt.Name, nt.User}
	n.limiter <- struct{}{}
	if t, ok := n.last[k]; ok && now.Sub(t) < n.cfg.Interval {
		<-n.limiter
		return false
	}
	if len(n.last) >= n.cfg.MaxKeys {
		for kk, t := range n.last {
			if now.Sub(t) >= n.cfg.Interval {
				delete(n.last, kk)
			}
		}
		if len(n.last) >= n.cfg.MaxKeys {
			clear(n.last) // bounded: worst case one extra notice per name
		}
	}
	n.last[k] = now
	select {
	case n.queue <- nt:
		<-n.limiter
		return true
	default:
		n.dropped++
		<-n.limiter
		return false
	}
}

// Run delivers queued notices until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case nt := <-n.queue:
			n.deliver(ctx, nt)
		}
	}
}

func (n *Notifier) deliver(ctx context.Context, nt Notice) {
	now := n.cfg.Now()
	if now.UnixNano() < n.noSessionUntil.Load() {
		// Queued before the session was found missing: not attempted.
		n.notShown.Add(1)
		if n.cfg.Undelivered != nil {
			n.cfg.Undelivered(nt, n.noSessionErr)
		}
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var cont func()
	if !nt.Blocked && n.cfg.Continue != nil {
		cont = func() { n.cfg.Continue(nt) }
	}
	err := n.cfg.Backend.Notify(dctx, nt, cont)
	if err == nil {
		n.cfg.Log.Debug("notified the user", "site", nt.Name, "user", nt.User)
		return
	}
	cause := "delivery failed"
	if errors.Is(err, ErrNoSession) {
		cause = "no desktop session"
		n.noSessionErr = err
		n.noSessionUntil.Store(now.Add(n.cfg.Recheck).UnixNano())
	}
	n.notShown.Add(1)
	if t, ok := n.logged[cause]; !ok || now.Sub(t) >= n.cfg.LogInterval {
		n.logged[cause] = now
		n.cfg.Log.Info("could not show desktop notifications; blocks and warnings are still recorded as events (netward events)",
			"cause", cause, "err", err, "site", nt.Name, "notShown", n.notShown.Swap(0),
			"retryAfter", n.cfg.Recheck, "nextLogAfter", n.cfg.LogInterval)
	}
	if n.cfg.Undelivered != nil {
		n.cfg.Undelivered(nt, err)
	}
}

// noBackend is the backend for platforms without a desktop mechanism.
type noBackend struct{ why string }

func (b noBackend) Notify(context.Context, Notice, func()) error {
	return fmt.Errorf("%w: %s", ErrNoSession, b.why)
}
