// Package jsonconfig decodes a JSON configuration file strictly, the way
// both netward and netward-console read theirs: exactly one object,
// unknown keys and trailing data refused, and errors that name the line
// and the key.
package jsonconfig

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// Decode decodes b into v. keysDoc says where every key is documented
// ("docs/console.md"), for the unknown-key error.
func Decode(b []byte, v any, keysDoc string) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("the file is empty; a config file holds one JSON object ({} for every default; %s lists the keys)", keysDoc)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return explain(b, err, reflect.TypeOf(v), keysDoc)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object; a config file holds exactly one object")
	}
	return nil
}

// explain turns encoding/json errors into messages with a line number and
// the key's whole path ("dns.capture", not "capture"); t is the type
// decoded into.
func explain(b []byte, err error, t reflect.Type, keysDoc string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line := 1 + bytes.Count(b[:min(int(syn.Offset), len(b))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, syn)
	case errors.As(err, &typ):
		line := 1 + bytes.Count(b[:min(int(typ.Offset), len(b))], []byte("\n"))
		return fmt.Errorf("line %d: key %q is %s; want %s", line, typ.Field, ValueWords(typ.Value), TypeWords(typ.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		key := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if path, _, ok := locate(b, t); ok {
			key = strconv.Quote(path)
		}
		return fmt.Errorf("unknown key %s; %s lists every key", key, keysDoc)
	}
	// A value's own UnmarshalText refused it (a duration, an address):
	// encoding/json does not say which key held it; find it.
	if path, perr, ok := locate(b, t); ok && perr != nil {
		return fmt.Errorf("key %q: %v", path, perr)
	}
	return err
}

// ValueWords names a JSON value kind as encoding/json reports it
// ("string", "number", "number -1", "bool", "array", "object") for a user.
func ValueWords(v string) string {
	kind, _, _ := strings.Cut(v, " ")
	switch kind {
	case "bool":
		return "true or false"
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "number":
		return "a number"
	case "string":
		return "a string"
	}
	return v
}

// TypeWords names what a Go type expects of a JSON value, in a user's
// words ("a whole number", not "int64"; "a number", not "float64").
func TypeWords(t reflect.Type) string {
	if t == nil {
		return "another kind of value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number ≥ 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(TypeWords(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// locate walks the JSON document b along the type t and returns the path
// of the first problem: a key t does not have (perr nil), or a string a
// TextUnmarshaler refuses (perr its error). ok is false when b holds
// neither (or cannot be walked).
func locate(b []byte, t reflect.Type) (path string, perr error, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	path, perr, found, err := walk(dec, t, "")
	return path, perr, found && err == nil
}

// walk reads one value from dec, expected to decode into t, and reports the
// first problem in it (see locate). err is a read error.
func walk(dec *json.Decoder, t reflect.Type, path string) (string, error, bool, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return "", nil, false, err
	}
	delim, isDelim := tok.(json.Delim)
	opaque := t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(jsonUnmarshaler)
	switch {
	case isDelim && delim == '{':
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return "", nil, false, err
			}
			key, _ := kt.(string)
			sub := key
			if path != "" {
				sub = path + "." + key
			}
			var elem reflect.Type
			switch {
			case opaque:
			case t.Kind() == reflect.Struct:
				f, ok := fieldByJSONName(t, key)
				if !ok {
					return sub, nil, true, nil
				}
				elem = f
			case t.Kind() == reflect.Map:
				elem = t.Elem()
			}
			if p, perr, found, err := walk(dec, elem, sub); found || err != nil {
				return p, perr, found, err
			}
		}
		_, err := dec.Token() // '}'
		return "", nil, false, err
	case isDelim && delim == '[':
		var elem reflect.Type
		if !opaque && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if p, perr, found, err := walk(dec, elem, fmt.Sprintf("%s[%d]", path, i)); found || err != nil {
				return p, perr, found, err
			}
		}
		_, err := dec.Token() // ']'
		return "", nil, false, err
	}
	if s, isStr := tok.(string); isStr && !opaque && reflect.PointerTo(t).Implements(textUnmarshaler) {
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return path, err, true, nil
		}
	}
	return "", nil, false, nil
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// fieldByJSONName finds the field of struct t that encoding/json fills from
// key (its tag name or Go name, case-insensitively, embedded structs
// included) and returns its type.
func fieldByJSONName(t reflect.Type, key string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if typ, ok := fieldByJSONName(ft, key); ok {
					return typ, true
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.EqualFold(name, key) {
			return f.Type, true
		}
	}
	return nil, false
}

// Finisher is a config type that, once decoded from the file called name,
// records the name, applies its defaults and validates itself.
type Finisher interface{ Finish(name string) error }

// Parse decodes b (the file name) strictly into a new T and finishes it;
// every error names the file.
func Parse[T any, PT interface {
	*T
	Finisher
}](b []byte, name, keysDoc string) (*T, error) {
	c := PT(new(T))
	if err := Decode(b, c, keysDoc); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	if err := c.Finish(name); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return (*T)(c), nil
}

// Load reads the file at path and parses it.
func Load[T any, PT interface {
	*T
	Finisher
}](path, keysDoc string) (*T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse[T, PT](b, path, keysDoc)
}
