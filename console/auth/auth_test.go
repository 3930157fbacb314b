package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/store"
)

var cheap = Argon2Params{Time: 1, Memory: 64, Threads: 1}

func newService(t *testing.T, now func() time.Time) *Service {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DSN: "sqlite:" + filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(Config{Store: st, Argon2: cheap, Now: now})
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery", DefaultArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("hash %q is not a PHC argon2id string with the default cost", h)
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "correct horse batterY": false, "": false} {
		if ok, err := VerifyPassword(h, pw); ok != want || err != nil {
			t.Errorf("VerifyPassword(%q) = %v, %v, want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", "$argon2id$v=19$m=64,t=1,p=1$!!$AA"} {
		if _, err := VerifyPassword(bad, "x"); err == nil {
			t.Errorf("VerifyPassword(%q) accepted a malformed hash", bad)
		}
	}
}

func TestLoginSessionCSRF(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s := newService(t, func() time.Time { return now })
	ctx := context.Background()
	name, pw, err := s.Bootstrap(ctx)
	if err != nil || name != "admin" || len(pw) < MinPasswordLength {
		t.Fatalf("Bootstrap = %q %q %v", name, pw, err)
	}
	if n, _, _ := s.Bootstrap(ctx); n != "" {
		t.Error("Bootstrap made a second admin")
	}
	if _, err := s.AddAccount(ctx, "viewer1", "viewer", "short"); err == nil {
		t.Error("short password accepted")
	}
	if _, err := s.AddAccount(ctx, "bad name", "viewer", "long enough password"); err == nil {
		t.Error("bad name accepted")
	}
	secret, p, err := s.Login(ctx, "admin", pw, "192.0.2.1")
	if err != nil || !p.Admin() {
		t.Fatalf("Login = %+v, %v", p, err)
	}
	req := func(method, cookie, csrf string) *http.Request {
		r := httptest.NewRequest(method, "/api/x", nil)
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
		}
		if csrf != "" {
			r.Header.Set("X-CSRF-Token", csrf)
		}
		return r
	}
	if got, err := s.Authenticate(req("GET", secret, "")); err != nil || got.Account.Name != "admin" {
		t.Errorf("GET with session = %+v, %v", got, err)
	}
	if _, err := s.Authenticate(req("POST", secret, "")); !errors.Is(err, ErrCSRF) {
		t.Errorf("POST without CSRF err = %v, want ErrCSRF", err)
	}
	if _, err := s.Authenticate(req("POST", secret, "wrong")); !errors.Is(err, ErrCSRF) {
		t.Errorf("POST with wrong CSRF err = %v", err)
	}
	if _, err := s.Authenticate(req("POST", secret, p.CSRF)); err != nil {
		t.Errorf("POST with CSRF err = %v", err)
	}
	if _, err := s.Authenticate(req("GET", "forged", "")); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("forged cookie err = %v", err)
	}
	// API tokens need no CSRF token.
	tok, _, err := s.CreateAPIToken(ctx, p, "ci", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/api/x", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if got, err := s.Authenticate(r); err != nil || got.Token != "ci" {
		t.Errorf("token POST = %+v, %v", got, err)
	}
	// Idle expiry.
	now = now.Add(13 * time.Hour)
	if _, err := s.Authenticate(req("GET", secret, "")); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("idle session err = %v", err)
	}
}

func TestLoginRateLimit(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s := newService(t, func() time.Time { return now })
	ctx := context.Background()
	if _, err := s.AddAccount(ctx, "alice", "admin", "a good long password"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := s.Login(ctx, "alice", "guess", "198.51.100.7"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d err = %v", i, err)
		}
	}
	var rl *RateLimitedError
	if _, _, err := s.Login(ctx, "alice", "a good long password", "198.51.100.7"); !errors.As(err, &rl) || rl.RetryAfter <= 0 {
		t.Fatalf("sixth try err = %v, want a rate limit", err)
	}
	// The account name is limited from another address too.
	if _, _, err := s.Login(ctx, "alice", "a good long password", "203.0.113.9"); !errors.As(err, &rl) {
		t.Errorf("other address err = %v, want a rate limit on the name", err)
	}
	now = now.Add(rl.RetryAfter)
	if _, _, err := s.Login(ctx, "alice", "a good long password", "203.0.113.9"); err != nil {
		t.Errorf("after waiting err = %v", err)
	}
}

func TestDeviceTokens(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	key, _, err := s.CreateEnrollKey(ctx, "wave 1", "admin", time.Time{})
	if err != nil || !strings.HasPrefix(key, PrefixEnrollKey) {
		t.Fatalf("CreateEnrollKey = %q, %v", key, err)
	}
	for _, bad := range []string{"../etc", ".", "..", ".hidden", "-x", ""} {
		if _, _, err := s.Enroll(ctx, key, bad, "x"); !errors.Is(err, ErrBadDeviceID) {
			t.Errorf("device id %q: err = %v, want ErrBadDeviceID", bad, err)
		}
	}
	if _, _, err := s.Enroll(ctx, "nwe_wrong", "d1", "x"); !errors.Is(err, store.ErrKeyInvalid) {
		t.Errorf("wrong key err = %v", err)
	}
	tok, d, err := s.Enroll(ctx, key, "d1", "laptop")
	if err != nil || d.ID != "d1" {
		t.Fatalf("Enroll = %+v, %v", d, err)
	}
	if got, err := s.Device(ctx, tok); err != nil || got.ID != "d1" {
		t.Errorf("Device = %+v, %v", got, err)
	}
	if _, err := s.Device(ctx, "nwd_nope"); !errors.Is(err, ErrBadDeviceToken) {
		t.Errorf("unknown token err = %v", err)
	}
	if err := s.st.RevokeDevice(ctx, "d1", "admin"); err != nil {
		t.Fatal(err)
	}
	s.ForgetDevice("d1")
	if _, err := s.Device(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked device err = %v, want ErrRevoked", err)
	}
}
