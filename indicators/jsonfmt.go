package indicators

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/netward/netward/internal/jsonconfig"
)

// jsonIndicator is one indicator in MDE API field names (CONTRACT §5). Fields
// MDE returns that netward does not use are ignored. id is a number in the
// MDE API and a string in netward's feed; both are accepted.
type jsonIndicator struct {
	ID                  json.RawMessage `json:"id"`
	IndicatorValue      string          `json:"indicatorValue"`
	IndicatorType       string          `json:"indicatorType"`
	Action              string          `json:"action"`
	Title               string          `json:"title"`
	Application         string          `json:"application"`
	ApplicationID       json.RawMessage `json:"applicationId"`
	ExpirationTime      *string         `json:"expirationTime"`
	BypassDurationHours *float64        `json:"bypassDurationHours"`
}

// jsonFieldNames maps field keys to MDE JSON names.
var jsonFieldNames = map[string]string{
	fID: "id", fType: "indicatorType", fValue: "indicatorValue", fAction: "action",
	fExpires: "expirationTime", fBypass: "bypassDurationHours",
}

func scalarString(r json.RawMessage) (string, error) {
	r = bytes.TrimSpace(r)
	if len(r) == 0 || string(r) == "null" {
		return "", nil
	}
	if r[0] == '"' {
		if len(r) >= 2 && r[len(r)-1] == '"' && bytes.IndexByte(r, '\\') < 0 && utf8.Valid(r) {
			return string(r[1 : len(r)-1]), nil // no escapes: the bytes are the string
		}
		var s string
		err := json.Unmarshal(r, &s)
		return s, err
	}
	if _, err := strconv.ParseFloat(string(r), 64); err == nil {
		return string(r), nil
	}
	return "", errors.New("want a string or a number")
}

// addJSON validates one decoded element of an indicator array.
func (s *Set) addJSON(j *jsonIndicator, index int, prefix string, o Options) {
	at := func(field string) Position {
		i := index
		name := jsonFieldNames[field]
		if name == "" {
			name = field
		}
		return Position{Index: &i, Field: prefix + name}
	}
	f := rawFields{typ: j.IndicatorType, value: j.IndicatorValue, action: j.Action, title: j.Title, app: j.Application}
	var err error
	if f.id, err = scalarString(j.ID); err != nil {
		s.reject(at(fID), "id: %v", err)
		return
	}
	if f.appID, err = scalarString(j.ApplicationID); err != nil {
		s.reject(at("applicationId"), "applicationId: %v", err)
		return
	}
	if j.ExpirationTime != nil {
		f.expires = *j.ExpirationTime
	}
	if j.BypassDurationHours != nil {
		f.hasBypass, f.bypassHours = true, *j.BypassDurationHours
	}
	s.add(f, at, 0, 0, index+1, o)
}

// streamArray decodes the JSON array of indicators at the scanner (or null),
// one element at a time: a million-indicator feed is read in one pass
// without a second copy of its body. An element of the wrong shape (a
// number where a string belongs, not an object) is reported with its index
// and field and the others still load; the error is non-nil only when the
// JSON itself is broken, and then the caller rejects the whole document.
func (s *Set) streamArray(p *scanner, prefix string, o Options) error {
	if p.lit("null") {
		return nil
	}
	if !p.eat('[') {
		return p.errorf("an array of indicators belongs here")
	}
	if s.Indicators == nil {
		// Every indicator names its value once, so this counts them
		// (over-counting only when the key appears inside a string).
		s.Indicators = make([]Indicator, 0, bytes.Count(p.b[p.i:], []byte(`"indicatorValue"`)))
	}
	p.ws()
	if p.eat(']') {
		return nil
	}
	var j jsonIndicator // reused: one allocation for the whole array
	for i := 0; ; i++ {
		j = jsonIndicator{}
		if !p.fastIndicator(&j) {
			raw, err := p.value()
			if err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &j); err != nil {
				var te *json.UnmarshalTypeError
				if !errors.As(err, &te) {
					return &syntaxError{off: p.i, msg: err.Error()}
				}
				x := i
				if te.Field == "" {
					s.reject(Position{Index: &x, Field: strings.TrimSuffix(prefix, ".")}, "not an indicator object: %s", jsonconfig.ValueWords(te.Value))
				} else {
					s.reject(Position{Index: &x, Field: prefix + te.Field}, "%s is %s; want %s", te.Field, jsonconfig.ValueWords(te.Value), jsonconfig.TypeWords(te.Type))
				}
				goto next
			}
		}
		s.addJSON(&j, i, prefix, o)
	next:
		p.ws()
		if p.eat(',') {
			p.ws()
			continue
		}
		if p.eat(']') {
			return nil
		}
		return p.errorf("invalid character after an array element: want , or ]")
	}
}

// ParseFeed parses a feed document (CONTRACT §5). The error is non-nil only
// when the body is not a feed document at all; problems with individual
// indicators or settings are in Set.Problems and those indicators are left
// out. It streams: the body is read once, element by element.
func ParseFeed(name string, body []byte, o Options) (*Set, error) {
	s := &Set{Name: name}
	if err := s.streamFeed(body, o); err != nil {
		return nil, fmt.Errorf("%s: not a feed document: %w", name, withLine(body, err))
	}
	s.checkDuplicates()
	s.sortProblems()
	return s, nil
}

func (s *Set) streamFeed(body []byte, o Options) error {
	p := &scanner{b: body}
	p.ws()
	if !p.eat('{') {
		return p.errorf("a feed document is a JSON object")
	}
	seen := map[string]bool{}
	p.ws()
	if !p.eat('}') {
		for {
			p.ws()
			rawKey, err := p.value()
			if err != nil {
				return err
			}
			var key string
			if err := json.Unmarshal(rawKey, &key); err != nil {
				return p.errorf("object keys are strings")
			}
			if seen[key] {
				return p.errorf("key %q appears twice", key)
			}
			seen[key] = true
			p.ws()
			if !p.eat(':') {
				return p.errorf("want : after the key %q", key)
			}
			p.ws()
			if key == "indicators" {
				if err := s.streamArray(p, "", o); err != nil {
					return err
				}
			} else {
				raw, err := p.value()
				if err != nil {
					return err
				}
				if err := s.feedField(key, raw); err != nil {
					return err
				}
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				break
			}
			return p.errorf("invalid character after an object member: want , or }")
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return p.errorf("trailing data after the JSON value")
	}
	return nil
}

// feedField reads one top-level member of a feed document other than its
// indicators. Keys this agent does not know (a newer console's, or a typo)
// are skipped with a warning: forward-compatible, and visible in
// `netward indicators validate`.
func (s *Set) feedField(key string, raw json.RawMessage) error {
	switch key {
	default:
		s.warnf(Position{Field: key}, "unknown key %q skipped (a newer console's field, or a typo)", key)
	case "version":
		v, err := scalarString(raw)
		if err != nil {
			s.errorf(Position{Field: "version"}, "version: %v", err)
		}
		s.Version = v
	case "sequence":
		// The rollback rules of CONTRACT §5 order sets by it: a document
		// whose sequence cannot be read is not a usable feed document.
		var n *json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return fieldErr("sequence", err)
		}
		if n != nil {
			v, err := strconv.ParseUint(n.String(), 10, 64)
			if err != nil {
				return fmt.Errorf("field \"sequence\" is %s; want a non-negative integer", n)
			}
			s.Sequence = v
		}
	case "generatedAt":
		var g *string
		if err := json.Unmarshal(raw, &g); err != nil {
			return fieldErr("generatedAt", err)
		}
		if g != nil && *g != "" {
			t, err := time.Parse(time.RFC3339Nano, *g)
			if err != nil {
				s.errorf(Position{Field: "generatedAt"}, "generatedAt %q is not an RFC 3339 timestamp", *g)
			}
			s.GeneratedAt = t
		}
	case "settings":
		var st *Settings
		if err := json.Unmarshal(raw, &st); err != nil {
			return fieldErr("settings", err)
		}
		s.warnUnknownSettings(raw)
		if st != nil {
			s.Settings = s.validateSettings(*st, func(f string) Position { return Position{Field: f} })
		}
	}
	return nil
}

// fieldErr names the field whose value has the wrong JSON type, with its
// path from the top ("settings.bypassDurationHours").
func fieldErr(field string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			field += "." + te.Field
		}
		return fmt.Errorf("field %q is %s; want %s", field, jsonconfig.ValueWords(te.Value), jsonconfig.TypeWords(te.Type))
	}
	return err
}

// settingsKeys are the keys of a feed's settings object.
var settingsKeys = map[string]bool{"mode": true, "warnRedirectUrl": true, "blockRedirectUrl": true,
	"bypassDurationHours": true, "convertWarnToBlock": true}

// warnUnknownSettings warns about each settings key this agent does not
// know; they are skipped, as unknown top-level keys are.
func (s *Set) warnUnknownSettings(raw json.RawMessage) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !settingsKeys[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		s.warnf(Position{Field: "settings." + k}, "unknown key %q skipped (a newer console's setting, or a typo)", "settings."+k)
	}
}

// withLine adds the line number to a JSON syntax error.
func withLine(b []byte, err error) error {
	var se *syntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(b[:min(se.off, len(b))], []byte("\n"))
		return fmt.Errorf("line %d: %s", line, se.msg)
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line := 1 + bytes.Count(b[:min(int(syn.Offset), len(b))], []byte("\n"))
		return fmt.Errorf("line %d: %w", line, err)
	}
	return err
}

// ParseMDEJSON parses indicators as the MDE API returns them: a JSON array,
// or the OData envelope {"value": [...]}.
func ParseMDEJSON(name string, body []byte, o Options) (*Set, error) {
	s := &Set{Name: name}
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] == '{' {
		var env struct {
			Value json.RawMessage `json:"value"`
		}
		if err := strictTop(b, &env); err != nil || env.Value == nil {
			return nil, fmt.Errorf("%s: neither a JSON array of indicators nor an object with a \"value\" array", name)
		}
		b = env.Value
	}
	if len(b) == 0 || b[0] != '[' {
		return nil, fmt.Errorf("%s: not a JSON array of indicators", name)
	}
	p := &scanner{b: b}
	if err := s.streamArray(p, "", o); err != nil {
		return nil, fmt.Errorf("%s: %w", name, withLine(b, err))
	}
	if p.ws(); p.i != len(b) {
		return nil, fmt.Errorf("%s: trailing data after the JSON value", name)
	}
	s.checkDuplicates()
	s.sortProblems()
	return s, nil
}

// strictTop decodes exactly one JSON value into v; trailing data is an error.
// Syntax errors carry their line.
func strictTop(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line := 1 + bytes.Count(b[:min(int(syn.Offset), len(b))], []byte("\n"))
			return fmt.Errorf("line %d: %v", line, syn)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("field %q is %s; want %s", te.Field, jsonconfig.ValueWords(te.Value), jsonconfig.TypeWords(te.Type))
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
