package jsonconfig

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// dur is a value with its own text form, like the agent's durations.
type dur time.Duration

func (d *dur) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"1h\"", b)
	}
	*d = dur(v)
	return nil
}

type embedded struct {
	E string `json:"e"`
}

func TestDecode(t *testing.T) {
	type cfg struct {
		A struct {
			B int     `json:"b"`
			F float64 `json:"f"`
			D dur     `json:"d"`
		} `json:"a"`
		L []struct {
			X bool `json:"x"`
		} `json:"l"`
		M map[string]struct {
			Y string `json:"y"`
		} `json:"m"`
		embedded
	}
	tests := []struct{ in, want string }{
		{`{"a":{"b":1,"d":"1h"},"e":"x","l":[{"x":true}],"m":{"k":{"y":"v"}}}`, ""},
		{`{"a":{"c":1}}`, `unknown key "a.c"; the docs lists every key`},
		{`{"a":{"b":1},"l":[{"x":true},{"z":1}]}`, `unknown key "l[1].z"`},
		{`{"m":{"k":{"y":"v","w":2}}}`, `unknown key "m.k.w"`},
		{`{"top":1}`, `unknown key "top"`},
		{"{\n\"a\":{\"b\":\"x\"}}", `line 2: key "a.b" is a string; want a whole number`},
		{`{"a":{"f":true}}`, `key "a.f" is true or false; want a number`},
		{`{"a":{"d":"soon"}}`, `key "a.d": "soon" is not a duration like "1h"`},
		{"{\n\n,", "line 3:"},
		{`{} {}`, "trailing data"},
		{"", "the file is empty; a config file holds one JSON object ({} for every default; the docs lists the keys)"},
		{" \n", "the file is empty"},
	}
	for _, tt := range tests {
		var c cfg
		err := Decode([]byte(tt.in), &c, "the docs")
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Decode(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestTypeWordsNeverGoTypes(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{float64(0), "a number"}, {int64(0), "a whole number"}, {"", "a string"}, {false, "true or false"},
		{[]string{}, "a list of strings"}, {map[string]int{}, "an object"}, {dur(0), "a string"},
	} {
		if got := TypeWords(reflect.TypeOf(tc.v)); got != tc.want {
			t.Errorf("TypeWords(%T) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
