package indicators

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// App is one entry of an app catalog: the app's domains (suffix match) and
// full host names. netward's catalog format is the one Cloud App Security
// style consoles export: [{"app": "Dropbox", "id": "11627", "domains":
// [...], "full": [...]}].
type App struct {
	App     string   `json:"app"`
	ID      string   `json:"id,omitempty"`
	Domains []string `json:"domains"`
	Full    []string `json:"full,omitempty"`
}

// Tag values and the action each one produces.
const (
	TagUnsanctioned = "Unsanctioned" // → Block
	TagMonitored    = "Monitored"    // → Warn
	TagSanctioned   = "Sanctioned"   // → no indicator
)

// ParseCatalog turns an app catalog plus a tags file into indicators:
// Unsanctioned apps become Block, Monitored apps Warn, Sanctioned apps
// nothing. Every indicator carries the app's name and id, so a Warn bypass
// covers the whole app (CONTRACT §1).
//
// The tags file is a JSON object {"Dropbox": "Unsanctioned", ...} or text
// lines "Dropbox,Unsanctioned" (comma or tab separated, # comments). Apps
// are matched by name (case-insensitive) or id.
//
// A catalog domain written with a path ("google.com/drive") cannot be
// enforced on TLS, where only the host is visible, so it is not propagated
// and is reported as a warning; list the host ("drive.google.com") instead.
func ParseCatalog(catalogName string, catalog []byte, tagsName string, tags []byte, o Options) (*Set, error) {
	s := &Set{Name: catalogName}
	var apps []App
	if err := strictTop(catalog, &apps); err != nil {
		return nil, fmt.Errorf("%s: not an app catalog (a JSON array of {\"app\", \"domains\"}): %w", catalogName, err)
	}
	tagged, err := parseTags(s, tagsName, tags)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, app := range apps {
		at := func(field string) Position { x := i; return Position{Index: &x, Field: field} }
		if strings.TrimSpace(app.App) == "" {
			s.reject(at("app"), "app has no name")
			continue
		}
		tg, ok := tagged[strings.ToLower(app.App)]
		if !ok && app.ID != "" {
			tg, ok = tagged[strings.ToLower(app.ID)]
		}
		if !ok {
			continue // untagged apps produce no indicator
		}
		seen[tg.key] = true
		var action, title string
		switch tg.tag {
		case TagUnsanctioned:
			action, title = "Block", "Unsanctioned app: "+app.App
		case TagMonitored:
			action, title = "Warn", "Monitored app: "+app.App
		default:
			continue
		}
		id := app.ID
		if id == "" {
			id = app.App
		}
		emit := func(field string, list []string) {
			for j, d := range list {
				fpos := fmt.Sprintf("%s[%d]", field, j)
				d = strings.TrimSpace(d)
				if strings.ContainsAny(d, "/") {
					s.warnf(at(fpos), "%q has a path and is not propagated: only the host is visible over TLS and QUIC; list the host name (like drive.google.com) instead", d)
					continue
				}
				s.add(rawFields{id: "app:" + id, typ: "DomainName", value: d, action: action, title: title, app: app.App, appID: app.ID},
					func(string) Position { return at(fpos) }, 0, 0, i+1, o)
			}
		}
		emit("domains", app.Domains)
		emit("full", app.Full)
	}
	keys := make([]string, 0, len(tagged))
	for key := range tagged {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if tg := tagged[key]; !seen[key] {
			s.warnf(tg.pos, "app %q is tagged %s but is not in the catalog %s", tg.name, tg.tag, catalogName)
		}
	}
	s.checkDuplicates()
	s.sortProblems()
	return s, nil
}

type tagEntry struct {
	key, name, tag string
	pos            Position
}

func normTag(t string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(t)) {
	case "unsanctioned":
		return TagUnsanctioned, true
	case "monitored":
		return TagMonitored, true
	case "sanctioned":
		return TagSanctioned, true
	}
	return "", false
}

// parseTags reads the tags file; bad lines are problems in s (with the tags
// file's name in their position).
func parseTags(s *Set, name string, b []byte) (map[string]tagEntry, error) {
	out := map[string]tagEntry{}
	put := func(app, tag string, pos Position) {
		pos.File = name
		t, ok := normTag(tag)
		if !ok {
			s.errorf(pos, "tag %q for app %q is not one of Unsanctioned, Monitored, Sanctioned", tag, app)
			return
		}
		key := strings.ToLower(strings.TrimSpace(app))
		if prev, dup := out[key]; dup && prev.tag != t {
			s.warnf(pos, "app %q is tagged %s here and %s at %s; the last one applies", app, t, prev.tag, prev.pos)
		}
		out[key] = tagEntry{key: key, name: app, tag: t, pos: pos}
	}
	tb := bytes.TrimSpace(b)
	if len(tb) > 0 && tb[0] == '{' {
		var m map[string]string
		if err := strictTop(tb, &m); err != nil {
			return nil, fmt.Errorf("%s: tags must map app names to Unsanctioned, Monitored or Sanctioned: %w", name, err)
		}
		apps := make([]string, 0, len(m))
		for app := range m {
			apps = append(apps, app)
		}
		sort.Strings(apps)
		for _, app := range apps {
			put(app, m[app], Position{Field: app})
		}
		return out, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxLine)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		sep := strings.LastIndexAny(text, ",\t")
		if sep < 0 {
			s.errorf(Position{File: name, Line: line, Column: 1}, "want \"app,tag\" (comma or tab separated)")
			continue
		}
		put(strings.TrimSpace(text[:sep]), text[sep+1:], Position{Line: line, Column: sep + 2})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
