package filter

import (
	"testing"
	"time"
	"unsafe"
)

// A policy holds one Rule per indicator; the fields a list entry leaves
// empty must not cost every rule their size (issue 21).
func TestRuleSize(t *testing.T) {
	if got, want := unsafe.Sizeof(Rule{}), uintptr(48); got > want {
		t.Errorf("unsafe.Sizeof(Rule{}) = %d, want at most %d (move rarely set fields into RuleMeta)", got, want)
	}
}

func TestRuleMeta(t *testing.T) {
	tests := []struct {
		name    string
		meta    RuleMeta
		wantNil bool
	}{
		{"empty", RuleMeta{}, true},
		{"title", RuleMeta{Title: "t"}, false},
		{"application", RuleMeta{Application: "App", ApplicationID: "7"}, false},
		{"bypass duration", RuleMeta{BypassDuration: time.Hour}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Rule{Value: "example.com", Meta: NewRuleMeta(tc.meta)}
			if (r.Meta == nil) != tc.wantNil {
				t.Fatalf("NewRuleMeta(%+v) = %v, want nil %v", tc.meta, r.Meta, tc.wantNil)
			}
			got := RuleMeta{Title: r.Title(), Application: r.Application(), ApplicationID: r.ApplicationID(), BypassDuration: r.BypassDuration()}
			if got != tc.meta {
				t.Errorf("accessors = %+v, want %+v", got, tc.meta)
			}
		})
	}
}

func TestRuleIndicatorID(t *testing.T) {
	list := &RuleMeta{IDSource: "list.txt"}
	tests := []struct {
		name string
		r    Rule
		want string
	}{
		{"explicit", Rule{ID: "ind-7"}, "ind-7"},
		{"none", Rule{}, ""},
		{"derived from the line", Rule{Line: 123, Meta: list}, "list.txt:123"},
		{"explicit wins over the line", Rule{ID: "x", Line: 4, Meta: list}, "x"},
		{"meta without a source", Rule{Line: 4, Meta: &RuleMeta{Title: "t"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.IndicatorID(); got != tc.want {
				t.Errorf("IndicatorID() = %q, want %q", got, tc.want)
			}
			if got := string(tc.r.AppendID([]byte("id="))); got != "id="+tc.want {
				t.Errorf("AppendID(%q) = %q, want %q", "id=", got, "id="+tc.want)
			}
		})
	}
	// The blocked answer's Extended DNS Error text appends it on the fast
	// path, which does not allocate.
	r := Rule{Line: 83808, Meta: list}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = r.AppendID(buf[:0]) }); n != 0 {
		t.Errorf("AppendID allocates %v times, want 0", n)
	}
	// IndicatorID (every blocked answer's record): the string only.
	var id string
	if n := testing.AllocsPerRun(100, func() { id = r.IndicatorID() }); n != 1 || id != "list.txt:83808" {
		t.Errorf("IndicatorID allocates %v times for %q, want once", n, id)
	}
}
