package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netward/netward/agent/bypass"
	"github.com/netward/netward/agent/notify"
	"github.com/netward/netward/agent/warnpage"
	"github.com/netward/netward/filter"
	"github.com/netward/netward/internal/bindhint"
	"github.com/netward/netward/telemetry"
)

// warnState is the warn component: the bypass store, the block/warn page
// server at the sink address, and desktop notifications.
type warnState struct {
	store    atomic.Pointer[bypass.Store] // nil until startWarn: nothing is bypassed
	notifier atomic.Pointer[notify.Notifier]
	// served is set once the pages listen on the sink address. Until then
	// the DNS proxy does not answer with the sink: whatever else listens
	// there would receive the user's requests.
	served atomic.Bool
}

// startWarn opens the bypass store (so every interceptor started after it sees
// bypasses that survived a restart), then serves the pages and notifications.
func (a *Agent) startWarn(ctx context.Context, g *errgroup.Group) error {
	store, err := bypass.Open(bypass.Config{Path: filepath.Join(a.cfg.DataDir, "bypass.db"), Log: a.log,
		OnChange: a.dp.BypassesChanged}, a.now())
	if err != nil {
		return err
	}
	a.warn.store.Store(store)
	a.dp.SetBypasses(store)
	seen := a.dp.State().Policy
	g.Go(func() error { return a.followBypasses(ctx, store, seen) })

	n := notify.New(notify.Config{
		Log: a.log, Now: a.now,
		Continue: func(nt notify.Notice) {
			if _, err := a.createBypass(nt.Name, nt.User, bypass.HowPage); err != nil {
				a.log.Warn("continue from a notification failed", "site", nt.Name, "err", err)
			}
		},
		// Undelivered notices need nothing more: the protection event itself
		// is emitted by the interceptor and shows in `netward events`, and
		// the notifier logs failures once per cause per interval.
	})
	a.warn.notifier.Store(n)
	g.Go(func() error { return n.Run(ctx) })

	return a.startPages(ctx, g)
}

// startPages binds the sink's ports 80 and 443 and serves the pages. Binding
// them needs privileges; without them the agent logs why and runs without
// pages (blocked names then get no explanation page, never a failed agent).
func (a *Agent) startPages(ctx context.Context, g *errgroup.Group) error {
	key, err := warnpage.LoadOrCreateKey(a.cfg.DataDir)
	if err != nil {
		a.pagesNotServed(fmt.Errorf("no secret key for the pages: %w", err))
		return nil
	}
	var ca *warnpage.CA
	if a.cfg.Warn.LocalCA {
		if ca, err = warnpage.LoadOrCreateCA(a.cfg.DataDir, a.now); err != nil {
			a.log.Warn("HTTPS warn pages disabled: local CA unusable", "err", err)
			ca = nil
		}
	}
	srv, err := warnpage.New(warnpage.Config{
		Decide: a.dp.DecideName,
		Continue: func(name, user string) (time.Time, error) {
			e, err := a.createBypass(name, user, bypass.HowPage)
			return e.Expires, err
		},
		PeerUser: warnpage.LocalPeerUser,
		Links: func() warnpage.Links {
			s := &a.dp.State().Settings
			return warnpage.Links{Warn: s.WarnRedirectURL, Block: s.BlockRedirectURL}
		},
		Key:  key,
		CA:   ca,
		Wait: time.Duration(a.cfg.DNS.SyntheticTTLSeconds+1) * time.Second,
		NoPage: func(name string) {
			a.notifyUser(a.dp.DecideName(name), name, "")
		},
		Panics: a.panics,
		Now:    a.now,
		Log:    a.log,
	})
	if err != nil {
		return err
	}
	sink := a.cfg.Warn.SinkAddress
	var lc net.ListenConfig
	httpAddr, httpsAddr := net.JoinHostPort(sink, "80"), net.JoinHostPort(sink, "443")
	httpLn, err := lc.Listen(ctx, "tcp", httpAddr)
	if err != nil {
		a.pagesNotServed(fmt.Errorf("%w; free the address or change warn.sinkAddress", bindhint.Explain("tcp", httpAddr, err)))
		return nil
	}
	httpsLn, err := lc.Listen(ctx, "tcp", httpsAddr)
	if err != nil {
		err = fmt.Errorf("HTTPS pages not served: %w", bindhint.Explain("tcp", httpsAddr, err))
		a.log.Warn("HTTPS to the sink disabled", "err", err)
		if ca != nil { // the HTTPS pages were asked for (warn.localCA)
			a.noteError("warn pages", err)
		}
		httpsLn = nil
	}
	a.warn.served.Store(true)
	a.log.Info("warn and block pages served", "addr", sink, "https", httpsLn != nil, "localCA", ca != nil)
	g.Go(func() error {
		if err := srv.Serve(ctx, httpLn, httpsLn); err != nil {
			a.log.Error("warn page server stopped", "err", err)
		}
		return nil
	})
	return nil
}

// pagesNotServed reports why the block/warn pages are not served, in the log
// and in `netward status` errors. DNS then answers warned names without the
// sink address (startDNS), so no other listener there gets the user.
func (a *Agent) pagesNotServed(err error) {
	err = fmt.Errorf("block and warn pages not served (warned names answer NXDOMAIN; users get a notice with 'netward bypass NAME'): %w", err)
	a.log.Warn("warn and block pages disabled", "err", err)
	a.noteError("warn pages", err)
}

// pruneBypasses drops the bypasses whose indicator is not a Warn in p. The
// code that installs a policy calls it in the same call, before returning:
// left to a goroutine woken by the change, back-to-back sets Warn → Block →
// Warn could all pass before it ran and the bypass would survive the Block
// (review of issue 15, finding 1).
func (a *Agent) pruneBypasses(p *filter.Policy) {
	store := a.warn.store.Load()
	if store == nil || p == nil {
		return
	}
	if n, err := store.Prune(p); err != nil {
		a.log.Warn("prune bypasses", "err", err)
	} else if n > 0 {
		a.log.Info("bypasses removed: their indicator is no longer a Warn", "count", n)
	}
}

// followBypasses keeps the bypass store in step with the decision: it
// purges expired bypasses exactly when the next one expires (lookups already
// ignore them; purging keeps the store small and publishes the change, so
// the kernel's IP verdicts close a warned address again), prunes again on a
// published policy that was installed without the agent (a backstop: the
// agent's own installs prune synchronously, pruneBypasses), and closes the
// store when ctx ends. seen is the policy in force when the store opened:
// the one the bypasses were kept under.
func (a *Agent) followBypasses(ctx context.Context, store *bypass.Store, seen *filter.Policy) error {
	defer store.Close()
	for {
		changed := a.dp.Changed()
		if p := a.dp.State().Policy; p != seen {
			seen = p
			a.pruneBypasses(p)
		}
		var fire <-chan time.Time
		var timer *time.Timer
		if next := store.NextExpiry(); !next.IsZero() {
			timer = time.NewTimer(max(next.Sub(a.now()), 0))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-fire:
			if n, err := store.Purge(a.now()); err != nil {
				a.log.Warn("purge expired bypasses", "err", err)
			} else if n > 0 {
				a.log.Info("bypasses expired", "count", n)
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// createBypass lets user (or, with user "", the whole device) continue past
// the Warn for name — a host name, or an IP address a Warn IP indicator
// covers (the notice of a refused connection names it). how is
// bypass.HowPage or bypass.HowCLI. It returns once the bypass is on disk,
// and emits a NetworkProtectionUserBypassEvent. A Block can never be
// bypassed: errors.Is(err, bypass.ErrBlock); a name with no Warn indicator
// gives bypass.ErrNotWarned.
func (a *Agent) createBypass(name, user, how string) (bypass.Entry, error) {
	store := a.warn.store.Load()
	if store == nil {
		return bypass.Entry{}, errors.New("the bypass store is not open yet; retry in a moment")
	}
	st := a.dp.State()
	n, m, err := bypassTarget(st.Policy, name)
	if err != nil {
		return bypass.Entry{}, err
	}
	switch {
	case m.Action == filter.Block:
		return bypass.Entry{}, fmt.Errorf("%s (indicator %s): %w", n, m.Rule.IndicatorID(), bypass.ErrBlock)
	case m.Action == filter.Warn && st.Settings.ConvertWarnToBlock:
		return bypass.Entry{}, fmt.Errorf("%s: %w (the organisation turns warnings into blocks: convertWarnToBlock)", n, bypass.ErrBlock)
	case m.Action != filter.Warn:
		return bypass.Entry{}, fmt.Errorf("%s: %w", n, bypass.ErrNotWarned)
	}
	e, err := bypass.NewEntry(m, n, user, how, a.now(), st.Settings.BypassDurationFor(m.Rule))
	if err != nil {
		return bypass.Entry{}, err
	}
	// Put publishes the change (bypass.Config.OnChange): a continued IP
	// Warn opens the address for every protocol at once.
	if err := store.Put(e); err != nil {
		return bypass.Entry{}, err
	}
	// A policy installed between the decision above and Put was pruned
	// before this entry existed: prune again against the one in force now.
	if p := a.dp.State().Policy; p != st.Policy {
		a.pruneBypasses(p)
	}
	src := ""
	if how == bypass.HowPage {
		src = telemetry.SourceHTTP
	}
	a.emit(telemetry.Record{
		ActionType:                   telemetry.NetworkProtectionUserBypassEvent,
		RemoteUrl:                    n,
		IndicatorId:                  m.Rule.IndicatorID(),
		Application:                  m.Rule.Application(),
		InitiatingProcessAccountName: user,
		Source:                       src,
	})
	a.log.Info("bypass created", "site", n, "target", e.Target(), "user", e.Who, "how", how, "expires", e.Expires)
	return e, nil
}

// bypassTarget reads what a user continues past: a host name (domain rules)
// or an IP address (IP rules) of policy p; URLs and ports are not bypass
// targets.
func bypassTarget(p *filter.Policy, name string) (string, filter.Match, error) {
	t, err := filter.ParseTarget(name)
	if err != nil || t.Kind == filter.TargetURL {
		if err == nil {
			err = errors.New("a URL is not a bypass target")
		}
		return "", filter.Match{}, fmt.Errorf("%q is not a host name or IP address: %w", name, err)
	}
	return t.String(), p.MatchTarget(t), nil
}

// listBypasses returns the active bypasses, soonest expiry first.
func (a *Agent) listBypasses() []bypass.Entry {
	if s := a.warn.store.Load(); s != nil {
		return s.List(a.now())
	}
	return nil
}

// revokeBypass removes every bypass for name: the name it was created for,
// its application, its indicator value, or whatever the name matches now.
// It returns how many it removed.
func (a *Agent) revokeBypass(name string) (int, error) {
	store := a.warn.store.Load()
	if store == nil {
		return 0, errors.New("the bypass store is not open yet; retry in a moment")
	}
	target := ""
	if n, m, err := bypassTarget(a.dp.State().Policy, name); err == nil {
		name = n
		if m.Rule != nil {
			target = bypass.TargetOf(m.Rule)
		}
	}
	// Remove publishes the change: a warned address closes again on every
	// protocol.
	return store.Remove(func(e bypass.Entry) bool {
		return e.Matches(name) || (target != "" && e.Target() == target)
	})
}

// bypassStats counts active bypasses per application (or indicator value for
// indicators without one), for `netward status`.
func (a *Agent) bypassStats() map[string]int {
	if s := a.warn.store.Load(); s != nil {
		return s.Stats(a.now())
	}
	return map[string]int{}
}

// notifyUser tells the logged-in user (user "" = every desktop session) that
// name was blocked or warned, for connections that cannot show a page
// (non-browser apps, TLS without the local CA). Rate-limited per name and
// user; never blocks. Decisions that do not refuse are ignored.
func (a *Agent) notifyUser(d filter.Decision, name, user string) {
	a.notifyUserAt(d, name, user, time.Time{})
}

// notifyUserAt is notifyUser for a decision made at a known time (zero:
// the notifier reads its clock).
func (a *Agent) notifyUserAt(d filter.Decision, name, user string, at time.Time) {
	n := a.warn.notifier.Load()
	if n == nil || !d.Verdict.Blocks() {
		return
	}
	nt := notify.Notice{Name: name, User: user, Blocked: d.Verdict == filter.VerdictBlock, At: at}
	if r := d.Match.Rule; r != nil {
		nt.App, nt.Reason = r.Application(), r.Title()
	}
	n.Notify(nt)
}
