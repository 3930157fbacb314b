package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminVerbs(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "console.json")
	os.WriteFile(cfg, []byte(`{"dataDir":"`+filepath.Join(dir, "data")+`"}`), 0o600)
	runAdmin := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := adminMain(context.Background(), args, strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := runAdmin("", "add", "alice", "--role", "admin", "--config", cfg); code != 0 || !strings.Contains(out, "password (shown once): ") {
		t.Fatalf("add = %d %q", code, out)
	}
	if code, _, errs := runAdmin("short\n", "add", "bob", "--password-stdin", "--config", cfg); code != 1 || !strings.Contains(errs, "shorter than 12") {
		t.Errorf("short password = %d %q", code, errs)
	}
	if code, out, _ := runAdmin("a long enough password\n", "add", "bob", "--password-stdin", "--config", cfg); code != 0 || strings.Contains(out, "shown once") {
		t.Errorf("add from stdin = %d %q", code, out)
	}
	if code, _, errs := runAdmin("", "add", "alice", "--config", cfg); code != 1 || !strings.Contains(errs, "already exists") {
		t.Errorf("duplicate = %d %q", code, errs)
	}
	code, out, _ := runAdmin("", "list", "--json", "--config", cfg)
	var list []struct{ Name, Role string }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].Role != "admin" || list[1].Role != "viewer" {
		t.Errorf("list = %d %s", code, out)
	}
	if code, _, _ := runAdmin("", "passwd", "bob", "--config", cfg); code != 0 {
		t.Errorf("passwd = %d", code)
	}
	if code, _, errs := runAdmin("", "remove", "alice", "--config", cfg); code != 1 || !strings.Contains(errs, "last admin") {
		t.Errorf("removing the last admin = %d %q", code, errs)
	}
	if code, _, _ := runAdmin("", "remove", "bob", "--config", cfg); code != 0 {
		t.Errorf("remove = %d", code)
	}
	// An unknown verb without --config is refused before the default store
	// (./netward-console-data) is created in the working directory.
	t.Chdir(t.TempDir())
	if code, _, _ := runAdmin("", "frobnicate", "x"); code != 2 {
		t.Errorf("unknown verb = %d", code)
	}
	if _, err := os.Stat("netward-console-data"); !os.IsNotExist(err) {
		t.Errorf("an unknown verb created ./netward-console-data (%v)", err)
	}
	var out2, errb bytes.Buffer
	if code := configMain([]string{"check", "--config", cfg}, &out2, &errb); code != 0 {
		t.Errorf("config check = %d %s", code, errb.String())
	}
	os.WriteFile(cfg, []byte(`{"lisen":"x"}`), 0o600)
	if code := configMain([]string{"check", "--config", cfg}, &out2, &errb); code != 1 || !strings.Contains(errb.String(), `unknown key "lisen"`) {
		t.Errorf("config check of a typo = %d %s", code, errb.String())
	}
}

// netward-console feed rotate-key replaces the stored signing key (a
// running console takes it up within feed.refreshSeconds; review #2).
func TestFeedRotateKeyVerb(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "console.json")
	os.WriteFile(cfg, []byte(`{"dataDir":"`+filepath.Join(dir, "data")+`"}`), 0o600)
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := feedMain(context.Background(), args, &out, &errb)
		return code, out.String() + errb.String()
	}
	code, first := run("public-key", "--json", "--config", cfg)
	if code != 0 || !strings.Contains(first, "publicKey") {
		t.Fatalf("public-key = %d %s", code, first)
	}
	code, out := run("rotate-key", "--config", cfg)
	if code != 0 || !strings.Contains(out, "netward enroll") {
		t.Fatalf("rotate-key = %d %s", code, out)
	}
	if code, again := run("public-key", "--json", "--config", cfg); code != 0 || again == first {
		t.Errorf("public key after rotation = %s, unchanged from %s", again, first)
	}
	if code, _ := run("frobnicate"); code != 2 {
		t.Errorf("unknown verb = %d", code)
	}
}

// The offline verbs open the store with a logger on stderr: a new store's
// migrations are quiet, an upgrade says what it migrates and how long each
// step took (it can take minutes on a large store), and stdout stays the
// command's answer.
func TestOfflineVerbsLogMigrations(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "console.json")
	os.WriteFile(cfg, []byte(`{"dataDir":"`+filepath.Join(dir, "data")+`"}`), 0o600)
	var out, errb bytes.Buffer
	if code := adminMain(context.Background(), []string{"add", "alice", "--config", cfg}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("add = %d %s", code, errb.String())
	}
	if strings.Contains(errb.String(), "migrat") {
		t.Errorf("a new store's migrations logged at info:\n%s", errb.String())
	}
	// Undo the record of a re-runnable migration (0032 drops and recreates
	// two indexes): the next command upgrades through it.
	db, err := sql.Open("sqlite", filepath.Join(dir, "data", "console.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM schema_migrations WHERE version = 32"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out.Reset()
	errb.Reset()
	if code := adminMain(context.Background(), []string{"list", "--json", "--config", cfg}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("list = %d %s", code, errb.String())
	}
	logs := errb.String()
	if !strings.Contains(logs, "migrating the database before serving") || !strings.Contains(logs, "migration=0032_covering_app_indexes.sqlite.sql") || !strings.Contains(logs, "took=") {
		t.Errorf("an upgrade by an offline verb logged:\n%s", logs)
	}
	var list []struct{ Name string }
	if err := json.Unmarshal(out.Bytes(), &list); err != nil || len(list) != 1 || list[0].Name != "alice" {
		t.Errorf("stdout of list --json during an upgrade = %q (%v)", out.String(), err)
	}
}
