package indicators

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
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
		s.errorf(at(fID), "id: %v", err)
		return
	}
	if f.appID, err = scalarString(j.ApplicationID); err != nil {
		s.errorf(at("applicationId"), "applicationId: %v", err)
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

// decodeArray decodes an array of indicators. The fast path decodes all of
// it at once; if that fails, each element is decoded on its own so that every
// bad element is reported with its index and field.
func (s *Set) decodeArray(raw json.RawMessage, prefix string, o Options) {
	var all []jsonIndicator
	if err := json.Unmarshal(raw, &all); err == nil {
		s.Indicators = make([]Indicator, 0, len(all))
		for i := range all {
			s.addJSON(&all[i], i, prefix, o)
		}
		return
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		s.errorf(Position{Field: strings.TrimSuffix(prefix, ".")}, "not a JSON array of indicators: %v", err)
		return
	}
	for i, e := range elems {
		var j jsonIndicator
		if err := json.Unmarshal(e, &j); err != nil {
			x := i
			p := Position{Index: &x}
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				p.Field = te.Field
				s.errorf(p, "%s is a JSON %s; want %s", te.Field, te.Value, te.Type)
			} else {
				s.errorf(p, "not an indicator object: %v", err)
			}
			continue
		}
		s.addJSON(&j, i, prefix, o)
	}
}

// feedDocument is the CONTRACT §5 body.
type feedDocument struct {
	Version     json.RawMessage `json:"version"`
	GeneratedAt string          `json:"generatedAt"`
	Settings    *Settings       `json:"settings"`
	Indicators  json.RawMessage `json:"indicators"`
}

// ParseFeed parses a feed document (CONTRACT §5). The error is non-nil only
// when the body is not a feed document at all; problems with individual
// indicators or settings are in Set.Problems and those indicators are left
// out.
func ParseFeed(name string, body []byte, o Options) (*Set, error) {
	s := &Set{Name: name}
	var doc feedDocument
	if err := strictTop(body, &doc); err != nil {
		return nil, fmt.Errorf("%s: not a feed document: %w", name, err)
	}
	v, err := scalarString(doc.Version)
	if err != nil {
		s.errorf(Position{Field: "version"}, "version: %v", err)
	}
	s.Version = v
	if doc.GeneratedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, doc.GeneratedAt)
		if err != nil {
			s.errorf(Position{Field: "generatedAt"}, "generatedAt %q is not an RFC 3339 timestamp", doc.GeneratedAt)
		}
		s.GeneratedAt = t
	}
	if doc.Settings != nil {
		s.Settings = s.validateSettings(*doc.Settings, func(f string) Position { return Position{Field: f} })
	}
	if len(doc.Indicators) > 0 && string(doc.Indicators) != "null" {
		s.decodeArray(doc.Indicators, "", o)
	}
	s.checkDuplicates()
	s.sortProblems()
	return s, nil
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
	if err := strictTop(b, new(json.RawMessage)); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.decodeArray(b, "", o)
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
			return fmt.Errorf("field %q is a JSON %s; want %s", te.Field, te.Value, te.Type)
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
