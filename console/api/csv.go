package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/netward/netward/console/auth"
)

// csv wraps a list handler: with ?format=csv the list under key (for a
// detail view, ?list= names one of its lists) is written as CSV whose
// columns are the JSON fields of its objects (nested objects as
// "parent.child", lists of scalars joined by ";"), so a CSV export always
// matches the JSON.
func (a *API) csv(key string, f handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) (any, error) {
		v, err := f(w, r, p)
		if err != nil || r.URL.Query().Get("format") != "csv" {
			return v, err
		}
		k := key
		if k == "" {
			k = r.URL.Query().Get("list")
			if k == "" {
				return nil, invalid("name the list to export with ?list= (one of the answer's lists, e.g. machines, users, domains, series)")
			}
		}
		doc, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(doc, &top); err != nil {
			return nil, err
		}
		raw, ok := top[k]
		if !ok {
			return nil, invalid("this answer has no list %q", k)
		}
		header, rows, err := flattenList(raw)
		if err != nil {
			return nil, invalid("list %q cannot be exported as CSV: %v", k, err)
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, k))
		cw := csv.NewWriter(w)
		_ = cw.Write(header)
		for _, row := range rows {
			_ = cw.Write(row)
		}
		cw.Flush()
		return nil, errHandled
	}
}

// flattenList turns a JSON array of objects into a header (the union of
// the flattened keys, in order of first appearance) and rows.
func flattenList(raw json.RawMessage) ([]string, [][]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, nil, errors.New("not a list")
	}
	var header []string
	col := map[string]int{}
	var records []map[string]string
	for dec.More() {
		rec := map[string]string{}
		if err := flattenValue(dec, "", rec, func(k string) {
			if _, ok := col[k]; !ok {
				col[k] = len(header)
				header = append(header, k)
			}
		}); err != nil {
			return nil, nil, err
		}
		records = append(records, rec)
	}
	rows := make([][]string, len(records))
	for i, rec := range records {
		row := make([]string, len(header))
		for k, v := range rec {
			row[col[k]] = v
		}
		rows[i] = row
	}
	if header == nil {
		header = []string{}
	}
	return header, rows, nil
}

// flattenValue reads one JSON value into rec under prefix.
func flattenValue(dec *json.Decoder, prefix string, rec map[string]string, seen func(string)) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	name := prefix
	if name == "" {
		name = "value"
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if prefix != "" {
					k = prefix + "." + k
				}
				if err := flattenValue(dec, k, rec, seen); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		case '[':
			var parts []string
			for dec.More() {
				var v any
				if err := dec.Decode(&v); err != nil {
					return err
				}
				switch x := v.(type) {
				case map[string]any, []any:
					b, _ := json.Marshal(x)
					parts = append(parts, string(b))
				default:
					parts = append(parts, fmt.Sprint(x))
				}
			}
			_, err := dec.Token()
			seen(name)
			rec[name] = strings.Join(parts, ";")
			return err
		}
	case nil:
		seen(name)
		rec[name] = ""
	default:
		seen(name)
		rec[name] = fmt.Sprint(t)
	}
	return nil
}

func splitHostPort(addr string) (string, string, error) {
	h, p, err := net.SplitHostPort(addr)
	if err == nil && (h == "" || p == "") {
		err = errors.New("host and port are both needed")
	}
	return h, p, err
}
