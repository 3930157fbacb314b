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
