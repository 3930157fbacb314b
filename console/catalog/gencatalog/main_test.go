package main

import (
	"os"
	"testing"
)

// The committed catalog.tsv is what the generator makes from the shared
// data, when that data is beside the checkout.
func TestGeneratedIsCurrent(t *testing.T) {
	in := "../../../../shared/data/app-catalog-v2fly.json"
	if _, err := os.Stat(in); err != nil {
		t.Skip("shared data not beside the checkout; nothing to compare with")
	}
	out := t.TempDir() + "/catalog.tsv"
	if err := run(in, "../../../../shared/data/app-categories-v2fly.json", out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	want, err := os.ReadFile("../catalog.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Error("catalog.tsv is stale: run go generate ./console/catalog")
	}
}
