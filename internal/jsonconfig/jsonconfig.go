// Package jsonconfig decodes a JSON configuration file strictly, the way
// both netward and netward-console read theirs: exactly one object,
// unknown keys and trailing data refused, and errors that name the line
// and the key.
package jsonconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Decode decodes b into v. keysDoc says where every key is documented
// ("docs/console.md"), for the unknown-key error.
func Decode(b []byte, v any, keysDoc string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return explain(b, err, keysDoc)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object; a config file holds exactly one object")
	}
	return nil
}

// explain turns encoding/json errors into messages with a line number and,
// for unknown keys, the key's name.
func explain(b []byte, err error, keysDoc string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line := 1 + bytes.Count(b[:min(int(syn.Offset), len(b))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, syn)
	case errors.As(err, &typ):
		line := 1 + bytes.Count(b[:min(int(typ.Offset), len(b))], []byte("\n"))
		return fmt.Errorf("line %d: key %q: value of type %s where %s was expected", line, typ.Field, typ.Value, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		key := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return fmt.Errorf("unknown key %s; %s lists every key", key, keysDoc)
	}
	return err
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
