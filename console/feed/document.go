// Package feed builds the console's indicator feed (CONTRACT §5) from app
// tags, custom indicators and settings, keeps one signed document per
// sequence in the store, and serves it to the agents' long polls from
// memory, gzip-compressed when they accept it, with the freshness proof
// re-signed hourly and each agent's check-in recorded.
package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/indicators"
)

// SettingsName is the store setting that holds the feed settings.
const SettingsName = "feed"

// DefaultSettings are the feed settings of a new console.
func DefaultSettings() indicators.Settings {
	return indicators.Settings{Mode: "block", BypassDurationHours: 24}
}

// Content is what the feed says at one moment, before it gets a sequence.
type Content struct {
	Version    string
	Settings   indicators.Settings
	Indicators []indicators.DocIndicator
	// Warnings explain what was left out (catalog entries with a path,
	// expired indicators), for GET /api/feed.
	Warnings []string
}

// Body marshals the content as the document of sequence seq made at at
// (CONTRACT §5: the sequence is in the signed body).
func (c *Content) Body(seq int64, at time.Time) ([]byte, error) {
	return indicators.Document{Version: c.Version, Sequence: uint64(seq), GeneratedAt: at.UTC(), Settings: c.Settings, Indicators: c.Indicators}.Marshal()
}

// Settings reads the feed settings (defaults when unset).
func Settings(ctx context.Context, st *store.Store) (indicators.Settings, error) {
	v, ok, err := st.Setting(ctx, SettingsName)
	if err != nil || !ok {
		return DefaultSettings(), err
	}
	s := DefaultSettings()
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return s, fmt.Errorf("stored feed settings are corrupt: %w", err)
	}
	return s, nil
}

// CheckSettings validates settings with the agent's own feed parser, so the
// console never publishes a setting an agent would refuse.
func CheckSettings(s indicators.Settings) []indicators.Problem {
	b, err := indicators.Document{Version: "check", Settings: s}.Marshal()
	if err != nil {
		return []indicators.Problem{{Severity: indicators.SeverityError, Message: err.Error()}}
	}
	set, err := indicators.ParseFeed("settings", b, indicators.Options{})
	if err != nil {
		return []indicators.Problem{{Severity: indicators.SeverityError, Message: err.Error()}}
	}
	return set.Problems
}

// Catalog returns the shipped catalog merged with the store's custom apps.
func Catalog(ctx context.Context, st *store.Store, builtin *catalog.Catalog) (*catalog.Catalog, error) {
	custom, err := st.CustomApps(ctx)
	if err != nil {
		return nil, err
	}
	apps := make([]catalog.App, 0, len(custom))
	for _, a := range custom {
		ca := catalog.App{ID: catalog.CustomID(a.ID), Name: a.Name, Domains: a.Domains}
		if a.Category != "" {
			ca.Categories = []string{a.Category}
		}
		apps = append(apps, ca)
	}
	return builtin.Merge(apps)
}

// Build gathers the feed content from the store at now.
func Build(ctx context.Context, st *store.Store, cat *catalog.Catalog, now time.Time) (*Content, error) {
	c := &Content{}
	var err error
	if c.Settings, err = Settings(ctx, st); err != nil {
		return nil, err
	}
	tags, err := st.Tags(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(tags))
	for id := range tags {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		var action, title string
		switch tags[id].Tag {
		case indicators.TagUnsanctioned:
			action, title = "Block", "Unsanctioned app: "
		case indicators.TagMonitored:
			action, title = "Warn", "Monitored app: "
		default:
			continue
		}
		app, err := cat.Lookup(id)
		if err != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("tag on %s ignored: %v", id, err))
			continue
		}
		for _, list := range [][]string{app.Domains, app.Full} {
			for _, d := range list {
				if strings.Contains(d, "/") {
					// CONTRACT §1: over TLS only the host is seen.
					c.Warnings = append(c.Warnings, fmt.Sprintf("app %s: %q has a path and is not propagated (only the host is visible over TLS and QUIC); list the host instead", app.Name, d))
					continue
				}
				c.Indicators = append(c.Indicators, indicators.DocIndicator{
					ID: "app:" + app.ID, IndicatorValue: d, IndicatorType: "DomainName", Action: action,
					Title: title + app.Name, Application: app.Name, ApplicationID: app.ID,
				})
			}
		}
	}
	custom, err := st.Indicators(ctx)
	if err != nil {
		return nil, err
	}
	for _, in := range custom {
		if !in.ExpirationTime.IsZero() && !in.ExpirationTime.After(now) {
			continue // expired: CONTRACT §1, not loaded
		}
		di := indicators.DocIndicator{
			ID: strconv.FormatInt(in.ID, 10), IndicatorValue: in.Value, IndicatorType: in.Type, Action: in.Action,
			Title: in.Title, Application: in.Application, ApplicationID: in.ApplicationID,
		}
		if !in.ExpirationTime.IsZero() {
			e := in.ExpirationTime.UTC()
			di.ExpirationTime = &e
		}
		if in.BypassHours > 0 {
			h := in.BypassHours
			di.BypassDurationHours = &h
		}
		c.Indicators = append(c.Indicators, di)
	}
	if c.Version, err = (indicators.Document{Settings: c.Settings, Indicators: c.Indicators}).ContentVersion(); err != nil {
		return nil, err
	}
	return c, nil
}

// nextExpiry is the earliest custom indicator expiry after now (zero: none),
// when the feed must be rebuilt without it.
func nextExpiry(ctx context.Context, st *store.Store, now time.Time) time.Time {
	list, err := st.Indicators(ctx)
	if err != nil {
		return time.Time{}
	}
	var next time.Time
	for _, in := range list {
		if e := in.ExpirationTime; !e.IsZero() && e.After(now) && (next.IsZero() || e.Before(next)) {
			next = e
		}
	}
	return next
}
