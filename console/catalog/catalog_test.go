package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestBuiltin(t *testing.T) {
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1408 {
		t.Errorf("Builtin().Len() = %d, want the 1,408 kind:app entries", c.Len())
	}
	if g := c.Groups(); len(g) != 128 {
		t.Errorf("len(Groups()) = %d, want 128 category groupings", len(g))
	}
	dropbox, err := c.Lookup("dropbox")
	if err != nil || len(dropbox.Domains) == 0 {
		t.Fatalf("Lookup(dropbox) = %+v, %v", dropbox, err)
	}
	if _, err := c.Lookup("category-ai-!cn"); !errors.Is(err, ErrGroup) {
		t.Errorf("Lookup(category grouping) err = %v, want ErrGroup", err)
	}
	if _, err := c.Lookup("no-such-app"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Lookup(unknown) err = %v, want ErrUnknown", err)
	}
	if !strings.Contains(LicenseNotice, "MIT") {
		t.Error("the v2fly licence notice is not embedded")
	}
}

func TestMatcher(t *testing.T) {
	base, err := Parse("app\tbig\tCloud storage\tbig.example =exact.other.example\napp\tsub\t\tlogin.big.example\ngroup\tcategory-x\tX\t3\n")
	if err != nil {
		t.Fatal(err)
	}
	c, err := base.Merge([]App{{ID: CustomID(1), Name: "Intranet", Domains: []string{"intra.example", "docs.example/path"}}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.NewMatcher()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ host, want string }{
		{"big.example", "big"},
		{"www.big.example", "big"},
		{"login.big.example", "sub"},
		{"a.login.big.example:443", "sub"},
		{"https://WWW.Big.Example./x?y", "big"},
		{"exact.other.example", "big"},
		{"intra.example", CustomID(1)},
		{"docs.example", ""}, // a path entry names no host
		{"unrelated.example", ""},
		{"", ""},
		{"bad name!", ""},
	}
	for _, tt := range tests {
		a, ok := m.Match(tt.host)
		if got := a.ID; got != tt.want || ok != (tt.want != "") {
			t.Errorf("Match(%q) = %q, %v, want %q", tt.host, got, ok, tt.want)
		}
	}
	if _, err := c.Merge([]App{{ID: "big"}}); err == nil {
		t.Error("Merge accepted a custom app with a shipped id")
	}
}
