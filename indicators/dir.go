package indicators

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DirSettingsFile and the tags files have fixed names in a feed directory.
const DirSettingsFile = "settings.json"

var dirTagsFiles = []string{"tags.json", "tags.txt"}

// LoadDir builds a feed document from a directory: every indicator file in
// it (any format Parse detects; hidden files and *.md are skipped), with
// app catalogs tagged by tags.json or tags.txt, and feed settings from
// settings.json. Bad indicators are left out and returned as problems.
func LoadDir(dir string, o Options) (Document, []Problem, error) {
	var doc Document
	entries, err := os.ReadDir(dir)
	if err != nil {
		return doc, nil, fmt.Errorf("feed directory: %w", err)
	}
	var tagsName string
	var tags []byte
	for _, n := range dirTagsFiles {
		p := filepath.Join(dir, n)
		if b, err := os.ReadFile(p); err == nil {
			tagsName, tags = p, b
			break
		}
	}
	var problems []Problem
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".md") || n == DirSettingsFile || n == "tags.json" || n == "tags.txt" {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if b, err := os.ReadFile(filepath.Join(dir, DirSettingsFile)); err == nil {
		var st Settings
		if err := strictTop(b, &st); err != nil {
			return doc, nil, fmt.Errorf("%s: %w", filepath.Join(dir, DirSettingsFile), err)
		}
		chk := &Set{Name: filepath.Join(dir, DirSettingsFile)}
		doc.Settings = chk.validateSettings(st, func(f string) Position { return Position{Field: f} })
		problems = append(problems, chk.Problems...)
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		b, err := os.ReadFile(p)
		if err != nil {
			return doc, nil, err
		}
		format := DetectFormat(n, b)
		if format == FormatFeed {
			// A feed document in the directory contributes its indicators
			// (and settings, unless settings.json is present).
			s, err := ParseFeed(p, b, o)
			if err != nil {
				return doc, nil, err
			}
			if _, err := os.Stat(filepath.Join(dir, DirSettingsFile)); err != nil {
				doc.Settings = s.Settings
			}
			s.AppendTo(&doc)
			problems = append(problems, s.Problems...)
			continue
		}
		s, err := Parse(p, b, format, tagsName, tags, o)
		if err != nil {
			return doc, nil, err
		}
		s.AppendTo(&doc)
		problems = append(problems, s.Problems...)
	}
	return doc, problems, nil
}
