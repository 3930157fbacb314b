// Package discovery evaluates discovery policies: rules (category, name
// pattern, minimum users, bytes or transactions over the last days) that
// tag the discovered apps matching them, hourly and on demand. Every tag
// a policy sets is recorded with the policy and the reason, and can be
// reverted; a policy only tags apps without a tag (an admin's tag wins)
// and never sets again a tag that was reverted.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
)

// Config configures the Evaluator.
type Config struct {
	Store *store.Store
	// Catalog returns the current catalog (custom apps included).
	Catalog func(context.Context) (*catalog.Catalog, error)
	// Publish rebuilds the feed after tags changed.
	Publish func(context.Context) error
	Log     *slog.Logger
	Now     func() time.Time
	// Interval between evaluations (default 1 h).
	Interval time.Duration
}

// Evaluator runs the policies.
type Evaluator struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New checks the config; it starts nothing.
func New(cfg Config) (*Evaluator, error) {
	if cfg.Store == nil || cfg.Catalog == nil || cfg.Publish == nil {
		return nil, errors.New("discovery: Store, Catalog and Publish are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	e := &Evaluator{cfg: cfg, log: cfg.Log, now: cfg.Now}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e, nil
}

// Check validates a policy before it is saved.
func Check(p store.DiscoveryPolicy) error {
	switch {
	case strings.TrimSpace(p.Name) == "" || len(p.Name) > 100:
		return errors.New("name: 1 to 100 characters")
	case p.Tag != "Sanctioned" && p.Tag != "Unsanctioned" && p.Tag != "Monitored":
		return fmt.Errorf("tag %q: want Sanctioned, Unsanctioned or Monitored", p.Tag)
	case p.PeriodDays < 1 || p.PeriodDays > 90:
		return errors.New("periodDays: 1 to 90")
	case p.MinUsers < 0 || p.MinBytes < 0 || p.MinTransactions < 0:
		return errors.New("minimums cannot be negative")
	case p.Category == "" && p.NamePattern == "" && p.MinUsers == 0 && p.MinBytes == 0 && p.MinTransactions == 0:
		return errors.New("a policy needs at least one condition (category, namePattern or a minimum): it would tag every app")
	}
	if p.NamePattern != "" {
		if _, err := path.Match(p.NamePattern, ""); err != nil {
			return fmt.Errorf("namePattern %q: %w", p.NamePattern, err)
		}
	}
	return nil
}

// Result is what one evaluation did.
type Result struct {
	Policies int             `json:"policies"`
	Tagged   []store.AutoTag `json:"tagged"`
}

// Evaluate runs every enabled policy once, tags what matches, and
// publishes the feed when a tag changed.
func (e *Evaluator) Evaluate(ctx context.Context) (Result, error) {
	res := Result{Tagged: []store.AutoTag{}}
	policies, err := e.cfg.Store.DiscoveryPolicies(ctx)
	if err != nil {
		return res, err
	}
	cat, err := e.cfg.Catalog(ctx)
	if err != nil {
		return res, err
	}
	now := e.now().UTC()
	for _, p := range policies {
		if !p.Enabled {
			continue
		}
		res.Policies++
		to := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
		period := store.PeriodFor(to.Add(-time.Duration(p.PeriodDays)*24*time.Hour), to, now)
		stats, err := e.cfg.Store.DiscoveredApps(ctx, period, false)
		if err != nil {
			return res, err
		}
		for _, s := range stats {
			app, err := cat.Lookup(s.AppID)
			if err != nil {
				continue
			}
			reason, ok := matches(p, app, s)
			if !ok {
				continue
			}
			t := store.AutoTag{AppID: s.AppID, PolicyID: p.ID, PolicyName: p.Name, Tag: p.Tag, Reason: reason}
			applied, err := e.cfg.Store.ApplyAutoTag(ctx, t)
			if err != nil {
				return res, err
			}
			if applied {
				res.Tagged = append(res.Tagged, t)
				e.log.Info("discovery policy tagged an app", "policy", p.Name, "app", s.AppID, "tag", p.Tag, "reason", reason)
			}
		}
		if err := e.cfg.Store.PolicyRan(ctx, p.ID, now); err != nil {
			return res, err
		}
	}
	if len(res.Tagged) > 0 {
		if err := e.cfg.Publish(ctx); err != nil {
			return res, fmt.Errorf("tags set but the feed was not rebuilt: %w", err)
		}
	}
	return res, nil
}

// matches says whether app's period stats satisfy p, and why.
func matches(p store.DiscoveryPolicy, app catalog.App, s store.AppStat) (string, bool) {
	var why []string
	if p.Category != "" {
		if !slices.ContainsFunc(app.Categories, func(c string) bool { return strings.EqualFold(c, p.Category) }) {
			return "", false
		}
		why = append(why, "category "+p.Category)
	}
	if p.NamePattern != "" {
		pat := strings.ToLower(p.NamePattern)
		m1, _ := path.Match(pat, strings.ToLower(app.Name))
		m2, _ := path.Match(pat, strings.ToLower(app.ID))
		if !m1 && !m2 {
			return "", false
		}
		why = append(why, fmt.Sprintf("name matches %q", p.NamePattern))
	}
	if p.MinUsers > 0 {
		if s.Users < p.MinUsers {
			return "", false
		}
		why = append(why, fmt.Sprintf("%d users ≥ %d", s.Users, p.MinUsers))
	}
	if p.MinBytes > 0 {
		if b := s.BytesSent + s.BytesReceived; b < p.MinBytes {
			return "", false
		} else {
			why = append(why, fmt.Sprintf("%d bytes ≥ %d", b, p.MinBytes))
		}
	}
	if p.MinTransactions > 0 {
		if s.Transactions < p.MinTransactions {
			return "", false
		}
		why = append(why, fmt.Sprintf("%d transactions ≥ %d", s.Transactions, p.MinTransactions))
	}
	return fmt.Sprintf("policy %q: %s over %d days", p.Name, strings.Join(why, ", "), p.PeriodDays), true
}

// Run evaluates the policies every Interval and prunes the hour buckets
// of the rollups past their keep, until ctx ends.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("discovery policies not evaluated", "err", err)
		}
		if _, err := e.cfg.Store.PruneHourlyRollups(ctx, e.now()); err != nil && ctx.Err() == nil {
			e.log.Error("hourly rollups not pruned", "err", err)
		}
	}
}
