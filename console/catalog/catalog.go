// Package catalog is the console's app catalog: the apps shipped in the
// binary (generated from the v2fly domain lists, MIT, with their licence
// beside them), the admin's custom apps, and the matcher that names the app
// a discovered host belongs to, using the agent's own domain-suffix trie so
// the console and the agents can never disagree about a name.
package catalog

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/netward/netward/filter"
)

//go:embed catalog.tsv
var builtinTSV string

// LicenseNotice is the v2fly licence the catalog data ships under; the
// console prints it (`netward-console licenses`) and serves it.
//
//go:embed LICENSE.v2fly.txt
var LicenseNotice string

// App is one taggable application.
type App struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Categories []string `json:"categories"`
	// Domains match the name and every subdomain; Full are exact host
	// names in the source list (the feed carries them as domains too, the
	// way the product this replaces does).
	Domains []string `json:"domains"`
	Full    []string `json:"full,omitempty"`
	Custom  bool     `json:"custom"`
}

// Group is a category grouping of the source lists (category-ai-!cn, cn,
// geolocation-!cn…): a set of other lists, shown for reference, never
// taggable as an app.
type Group struct {
	Name    string `json:"name"`
	Label   string `json:"label"`
	Domains int    `json:"domains"`
}

// Catalog is an immutable set of apps and groups; Merge makes a new one
// with custom apps added.
type Catalog struct {
	apps   []App
	byID   map[string]int
	groups map[string]Group
	order  []string // group names, sorted
}

// ErrGroup is returned by Lookup for a category grouping.
var ErrGroup = errors.New("is a category grouping of apps, not an app; tag the apps in it instead")

// ErrUnknown is returned by Lookup for an id that is neither app nor group.
var ErrUnknown = errors.New("no such app in the catalog")

// Builtin parses the embedded catalog.
func Builtin() (*Catalog, error) { return Parse(builtinTSV) }

// Parse reads the catalog.tsv format written by gencatalog.
func Parse(tsv string) (*Catalog, error) {
	c := &Catalog{byID: map[string]int{}, groups: map[string]Group{}}
	sc := bufio.NewScanner(strings.NewReader(tsv))
	sc.Buffer(nil, 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		f := strings.Split(text, "\t")
		switch {
		case f[0] == "app" && len(f) == 4:
			a := App{ID: f[1], Name: f[1]}
			if f[2] != "" {
				a.Categories = strings.Split(f[2], "|")
			}
			for n := range strings.FieldsSeq(f[3]) {
				if h, ok := strings.CutPrefix(n, "="); ok {
					a.Full = append(a.Full, h)
				} else {
					a.Domains = append(a.Domains, n)
				}
			}
			if _, dup := c.byID[a.ID]; dup {
				return nil, fmt.Errorf("catalog line %d: app %q listed twice", line, a.ID)
			}
			c.byID[a.ID] = len(c.apps)
			c.apps = append(c.apps, a)
		case f[0] == "group" && len(f) == 4:
			n, err := strconv.Atoi(f[3])
			if err != nil {
				return nil, fmt.Errorf("catalog line %d: domain count %q", line, f[3])
			}
			c.groups[f[1]] = Group{Name: f[1], Label: f[2], Domains: n}
			c.order = append(c.order, f[1])
		default:
			return nil, fmt.Errorf("catalog line %d: want app or group with 4 tab-separated fields", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Strings(c.order)
	return c, nil
}

// Merge returns a catalog with custom apps added after the shipped ones. A
// custom app whose id is already taken is an error (custom ids are made
// with CustomID, which cannot collide with a shipped id).
func (c *Catalog) Merge(custom []App) (*Catalog, error) {
	out := &Catalog{apps: make([]App, 0, len(c.apps)+len(custom)), byID: make(map[string]int, len(c.byID)+len(custom)),
		groups: c.groups, order: c.order}
	out.apps = append(out.apps, c.apps...)
	for k, v := range c.byID {
		out.byID[k] = v
	}
	for _, a := range custom {
		if _, dup := out.byID[a.ID]; dup {
			return nil, fmt.Errorf("custom app id %q is already in the catalog", a.ID)
		}
		a.Custom = true
		out.byID[a.ID] = len(out.apps)
		out.apps = append(out.apps, a)
	}
	return out, nil
}

// CustomPrefix starts every custom app id; shipped ids never contain ':'.
const CustomPrefix = "custom:"

// CustomID makes a custom app id from its store key.
func CustomID(n int64) string { return CustomPrefix + strconv.FormatInt(n, 10) }

// Apps returns every app (shipped first, then custom), in catalog order.
// The slice is shared: do not modify it.
func (c *Catalog) Apps() []App { return c.apps }

// Len is the number of apps.
func (c *Catalog) Len() int { return len(c.apps) }

// Groups returns the category groupings, sorted by name.
func (c *Catalog) Groups() []Group {
	out := make([]Group, 0, len(c.order))
	for _, n := range c.order {
		out = append(out, c.groups[n])
	}
	return out
}

// Lookup finds an app by id; a grouping's name gives ErrGroup.
func (c *Catalog) Lookup(id string) (App, error) {
	if i, ok := c.byID[id]; ok {
		return c.apps[i], nil
	}
	if g, ok := c.groups[id]; ok {
		return App{}, fmt.Errorf("%q (%s) %w", id, g.Label, ErrGroup)
	}
	return App{}, fmt.Errorf("%q: %w", id, ErrUnknown)
}

// Categories counts apps per category label, sorted by label.
func (c *Catalog) Categories() []CategoryCount {
	m := map[string]int{}
	for _, a := range c.apps {
		for _, cat := range a.Categories {
			m[cat]++
		}
	}
	out := make([]CategoryCount, 0, len(m))
	for k, v := range m {
		out = append(out, CategoryCount{Category: k, Apps: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Category < out[j].Category })
	return out
}

// CategoryCount is one category label and its number of apps.
type CategoryCount struct {
	Category string `json:"category"`
	Apps     int    `json:"apps"`
}

// Matcher names the app a host belongs to: the most specific catalog
// domain wins (the agent's rule, CONTRACT §1), so login.microsoftonline.com
// is the app that lists it even when another app lists microsoftonline.com.
type Matcher struct {
	policy *filter.Policy
	apps   []App
}

// NewMatcher compiles the catalog's host names into the agent's trie.
// Entries with a path cannot name a host and are left out of matching.
func (c *Catalog) NewMatcher() (*Matcher, error) {
	var rules []filter.Rule
	for i, a := range c.apps {
		id := strconv.Itoa(i)
		for _, list := range [][]string{a.Domains, a.Full} {
			for _, d := range list {
				if strings.Contains(d, "/") {
					continue
				}
				rules = append(rules, filter.Rule{Value: d, Type: filter.TypeDomain, Action: filter.Audit, ID: id})
			}
		}
	}
	p, err := filter.CompileOwned(rules)
	if err != nil {
		return nil, fmt.Errorf("catalog matcher: %w", err)
	}
	return &Matcher{policy: p, apps: c.apps}, nil
}

// Match returns the app that claims host (a RemoteUrl: a host name, maybe
// with a port or an URL path, which are ignored).
func (m *Matcher) Match(host string) (App, bool) {
	host = HostOf(host)
	if host == "" {
		return App{}, false
	}
	r := m.policy.MatchName(host).Rule
	if r == nil {
		return App{}, false
	}
	i, err := strconv.Atoi(r.IndicatorID())
	if err != nil || i < 0 || i >= len(m.apps) {
		return App{}, false
	}
	return m.apps[i], true
}

// HostOf reduces a RemoteUrl to its canonical host name ("" if it has
// none): scheme, path, port and trailing dot are dropped.
func HostOf(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[:i], ":") {
		s = s[:i]
	}
	n, err := filter.CanonicalName(strings.TrimSuffix(s, "."))
	if err != nil {
		return ""
	}
	return n
}
