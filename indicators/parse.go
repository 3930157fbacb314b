package indicators

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Format names accepted by Parse and `netward indicators validate --format`.
const (
	FormatAuto    = "auto"
	FormatFeed    = "feed"    // CONTRACT §5 document
	FormatCSV     = "csv"     // MDE CSV import file
	FormatJSON    = "json"    // MDE API JSON array
	FormatHosts   = "hosts"   // hosts file
	FormatList    = "list"    // one domain / IP / URL per line
	FormatCatalog = "catalog" // app catalog (needs tags)
)

// Formats lists the format names in the order the CLI documents them.
var Formats = []string{FormatAuto, FormatFeed, FormatCSV, FormatJSON, FormatHosts, FormatList, FormatCatalog}

// DetectFormat guesses a file's format from its name and first bytes: a
// JSON object with "indicators" is a feed, with "value" an MDE API answer; a
// JSON array whose first element has "app" is a catalog, otherwise an MDE
// array; a .csv name or a first line naming IndicatorType is CSV; anything
// else is a hosts file or list (one parser reads both).
func DetectFormat(name string, b []byte) string {
	t := bytes.TrimSpace(bytes.TrimPrefix(b, []byte("\ufeff")))
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		if t[0] == '{' {
			var probe map[string]json.RawMessage
			if json.Unmarshal(t, &probe) == nil {
				if _, ok := probe["value"]; ok {
					if _, feed := probe["indicators"]; !feed {
						return FormatJSON
					}
				}
			}
			return FormatFeed
		}
		var first []map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(t))
		if dec.Decode(&first) == nil && len(first) > 0 {
			if _, ok := first[0]["app"]; ok {
				return FormatCatalog
			}
		}
		return FormatJSON
	}
	firstLine, _, _ := bytes.Cut(t, []byte("\n"))
	if strings.EqualFold(filepath.Ext(name), ".csv") || bytes.Contains(bytes.ToLower(firstLine), []byte("indicatortype")) {
		return FormatCSV
	}
	return FormatHosts
}

// Parse parses b in format (FormatAuto detects it). Catalogs need tags
// (tagsName, tags); other formats ignore them.
func Parse(name string, b []byte, format string, tagsName string, tags []byte, o Options) (*Set, error) {
	if format == "" || format == FormatAuto {
		format = DetectFormat(name, b)
	}
	switch format {
	case FormatFeed:
		return ParseFeed(name, b, o)
	case FormatCSV:
		return ParseCSV(name, bytes.NewReader(b), o)
	case FormatJSON:
		return ParseMDEJSON(name, b, o)
	case FormatHosts, FormatList:
		return ParseHosts(name, bytes.NewReader(b), o)
	case FormatCatalog:
		if tags == nil {
			return nil, fmt.Errorf("%s is an app catalog: give the tags file too (--tags FILE) that marks apps Unsanctioned, Monitored or Sanctioned", name)
		}
		return ParseCatalog(name, b, tagsName, tags, o)
	}
	return nil, fmt.Errorf("unknown format %q; want one of %s", format, strings.Join(Formats, ", "))
}
