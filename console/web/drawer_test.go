package web

import (
	"strings"
	"testing"
)

// TestScriptAsksForTheDrawerAlone: the script that opens a drawer in place
// sends the header DrawerOnly looks for, so the pages build the drawer alone
// for it (the two are spelled in two languages).
func TestScriptAsksForTheDrawerAlone(t *testing.T) {
	js, err := embedded.ReadFile("assets/console.js")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), "'"+DrawerHeader+"': '1'") {
		t.Errorf("console.js does not send %s: '1' when it opens a drawer", DrawerHeader)
	}
}
