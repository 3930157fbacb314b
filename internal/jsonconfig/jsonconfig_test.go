package jsonconfig

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type cfg struct {
		A struct {
			B int `json:"b"`
		} `json:"a"`
	}
	tests := []struct{ in, want string }{
		{`{"a":{"b":1}}`, ""},
		{`{"a":{"c":1}}`, `unknown key "c"; the docs lists every key`},
		{"{\n\"a\":{\"b\":\"x\"}}", `line 2: key "a.b": value of type string where int was expected`},
		{"{\n\n,", "line 3:"},
		{`{} {}`, "trailing data"},
	}
	for _, tt := range tests {
		var c cfg
		err := Decode([]byte(tt.in), &c, "the docs")
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Decode(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
