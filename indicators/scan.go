package indicators

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// A feed of a million indicators is ~170 MB of JSON in which nearly every
// element is a flat object of plain strings. encoding/json spends most of a
// load on reflection for those elements, so the indicator arrays are read by
// a small scanner with a strict fast path: an element that is a flat object
// whose strings have no escapes and whose keys are spelled exactly as
// CONTRACT §5 writes them is decoded here; anything else (escapes, nested
// values, a key in another case, a number where a string belongs, broken
// JSON) is handed to encoding/json, element by element, so the result and
// every error message are encoding/json's. FuzzFastIndicator holds the two
// paths to the same answer.

// scanner walks a JSON document by byte offset.
type scanner struct {
	b []byte
	i int
}

// syntaxError is a JSON syntax error at a byte offset of the whole document.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

func (p *scanner) errorf(format string, args ...any) error {
	return &syntaxError{off: p.i, msg: fmt.Sprintf(format, args...)}
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// eat consumes c if it is next.
func (p *scanner) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *scanner) lit(s string) bool {
	if bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.i += len(s)
		return true
	}
	return false
}

// value reads one JSON value of any kind with encoding/json and returns its
// bytes; syntax errors carry the document offset.
func (p *scanner) value() (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(p.b[p.i:]))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, &syntaxError{off: p.i + int(syn.Offset), msg: syn.Error()}
		}
		return nil, &syntaxError{off: p.i, msg: err.Error()}
	}
	p.i += int(dec.InputOffset())
	return raw, nil
}

// plainString reads a string without escapes, control characters or invalid
// UTF-8 — the only kind whose bytes are its value. ok is false (and nothing
// consumed) for any other string or a non-string.
func (p *scanner) plainString() (s []byte, ok bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	ascii := true
	for k := start; k < len(p.b); k++ {
		c := p.b[k]
		switch {
		case c == '"':
			s = p.b[start:k]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			p.i = k + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, false
}

// number reads a JSON number (RFC 8259 §6 grammar) and returns its bytes.
func (p *scanner) number() ([]byte, bool) {
	b, k := p.b, p.i
	digits := func() bool {
		s := k
		for k < len(b) && '0' <= b[k] && b[k] <= '9' {
			k++
		}
		return k > s
	}
	if k < len(b) && b[k] == '-' {
		k++
	}
	switch {
	case k < len(b) && b[k] == '0':
		k++
	case !digits():
		return nil, false
	}
	if k < len(b) && b[k] == '.' {
		k++
		if !digits() {
			return nil, false
		}
	}
	if k < len(b) && (b[k] == 'e' || b[k] == 'E') {
		k++
		if k < len(b) && (b[k] == '+' || b[k] == '-') {
			k++
		}
		if !digits() {
			return nil, false
		}
	}
	n := b[p.i:k]
	p.i = k
	return n, true
}

// scalar reads a string, number, true, false or null on the fast path and
// returns its raw bytes.
func (p *scanner) scalar() ([]byte, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '"' {
		if _, ok := p.plainString(); !ok {
			return nil, false
		}
		return p.b[start:p.i], true
	}
	if p.lit("null") || p.lit("true") || p.lit("false") {
		return p.b[start:p.i], true
	}
	return p.number()
}

// Field names of CONTRACT §5 as they appear in the JSON, for the fast path.
var fastKeys = [...]string{"id", "indicatorValue", "indicatorType", "action", "title",
	"application", "applicationId", "expirationTime", "bypassDurationHours"}

// fastIndicator decodes the flat object at the scanner into j, which must be
// zero. It reports false, with the scanner back where it was, whenever the
// element needs encoding/json.
func (p *scanner) fastIndicator(j *jsonIndicator) bool {
	start := p.i
	if !p.fastObject(j) {
		p.i = start
		*j = jsonIndicator{}
		return false
	}
	return true
}

func (p *scanner) fastObject(j *jsonIndicator) bool {
	if !p.eat('{') {
		return false
	}
	p.ws()
	if p.eat('}') {
		return true
	}
	for {
		key, ok := p.plainString()
		if !ok {
			return false
		}
		p.ws()
		if !p.eat(':') {
			return false
		}
		p.ws()
		raw, ok := p.scalar()
		if !ok {
			return false
		}
		if !j.setFast(key, raw) {
			return false
		}
		p.ws()
		if p.eat(',') {
			p.ws()
			continue
		}
		return p.eat('}')
	}
}

// setFast stores one member the way encoding/json would, or reports false
// when only encoding/json can say what it means (a key spelled in another
// case, a value of the wrong type, a number out of range).
func (j *jsonIndicator) setFast(key, raw []byte) bool {
	str := func(dst *string) bool {
		switch raw[0] {
		case '"':
			*dst = string(raw[1 : len(raw)-1])
			return true
		case 'n': // null leaves a string as it is
			return true
		}
		return false
	}
	switch string(key) {
	case "id":
		j.ID = json.RawMessage(raw)
	case "applicationId":
		j.ApplicationID = json.RawMessage(raw)
	case "indicatorValue":
		return str(&j.IndicatorValue)
	case "indicatorType":
		return str(&j.IndicatorType)
	case "action":
		return str(&j.Action)
	case "title":
		return str(&j.Title)
	case "application":
		return str(&j.Application)
	case "expirationTime":
		switch raw[0] {
		case '"':
			s := string(raw[1 : len(raw)-1])
			j.ExpirationTime = &s
		case 'n':
			j.ExpirationTime = nil
		default:
			return false
		}
	case "bypassDurationHours":
		switch {
		case raw[0] == 'n':
			j.BypassDurationHours = nil
		case raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9':
			f, err := strconv.ParseFloat(string(raw), 64)
			if err != nil {
				return false
			}
			j.BypassDurationHours = &f
		default:
			return false
		}
	default:
		// encoding/json matches keys case-insensitively: an unknown key
		// that folds to a known one is its business.
		for _, k := range fastKeys {
			if bytes.EqualFold(key, []byte(k)) {
				return false
			}
		}
	}
	return true
}
