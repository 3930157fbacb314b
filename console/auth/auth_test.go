package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
	// One guessing address does not lock the account for others (review #3).
	if _, _, err := s.Login(ctx, "alice", "a good long password", "203.0.113.9"); err != nil {
		t.Errorf("other address err = %v, want signed in", err)
	}
	now = now.Add(rl.RetryAfter)
	if _, _, err := s.Login(ctx, "alice", "a good long password", "198.51.100.7"); err != nil {
		t.Errorf("after waiting err = %v", err)
	}
}

// Concurrent guesses from one address all pass a check-then-record
// limiter; the token is now taken before the password is checked (review
// #3): 40 at once, at most LoginBurst are evaluated.
func TestLoginConcurrentGuesses(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	if _, err := s.AddAccount(ctx, "vic", "viewer", "viewerpassword1"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var bad, limited atomic.Int64
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.Login(ctx, "vic", fmt.Sprintf("wrongpassword%d", i), "198.51.100.7")
			var rl *RateLimitedError
			switch {
			case errors.Is(err, ErrBadCredentials):
				bad.Add(1)
			case errors.As(err, &rl):
				limited.Add(1)
			default:
				t.Errorf("err = %v", err)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 5 || bad.Load()+limited.Load() != 40 {
		t.Errorf("%d guesses evaluated, %d limited; want at most 5 evaluated", bad.Load(), limited.Load())
	}
	// The same race on enrollment with wrong keys.
	bad.Store(0)
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.EnrollFrom(ctx, EnrollRequest{Key: "nwe_wrong", DeviceID: "d1"}, "198.51.100.8"); errors.Is(err, store.ErrKeyInvalid) {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 5 {
		t.Errorf("%d wrong enrollment keys evaluated, want at most 5", bad.Load())
	}
}

// A spray from many addresses slows the account down but cannot lock out
// a client the account signs in from (review #3), and the slow-down is
// seconds, not the minutes of the per-address bucket.
func TestLoginSprayCannotLockOut(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s := newService(t, func() time.Time { return now })
	ctx := context.Background()
	if _, err := s.AddAccount(ctx, "alice", "admin", "a good long password"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Login(ctx, "alice", "a good long password", "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	evaluated := 0
	for i := range 200 {
		_, _, err := s.Login(ctx, "alice", "guess", fmt.Sprintf("198.51.100.%d", i%250))
		if errors.Is(err, ErrBadCredentials) {
			evaluated++
		}
	}
	if evaluated > AccountBurstFactor*5 {
		t.Errorf("a spray from 200 addresses had %d guesses evaluated at once, want at most %d", evaluated, AccountBurstFactor*5)
	}
	// The admin's usual client is never held back by others' failures.
	if _, _, err := s.Login(ctx, "alice", "a good long password", "192.0.2.10"); err != nil {
		t.Errorf("known client during the spray: %v", err)
	}
	// A new client waits seconds, not a lockout.
	var rl *RateLimitedError
	if _, _, err := s.Login(ctx, "alice", "a good long password", "203.0.113.50"); !errors.As(err, &rl) || rl.RetryAfter > 15*time.Second {
		t.Fatalf("new client during the spray: %v, want a short slow-down", err)
	}
	now = now.Add(rl.RetryAfter)
	if _, _, err := s.Login(ctx, "alice", "a good long password", "203.0.113.50"); err != nil {
		t.Errorf("new client after %s: %v", rl.RetryAfter, err)
	}
	// IPv6 clients are limited per /64.
	for i := range 5 {
		s.Login(ctx, "nobody", "guess", fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	if _, _, err := s.Login(ctx, "alice", "a good long password", "2001:db8:1:2::ff"); !errors.As(err, &rl) {
		t.Errorf("sixth address of one /64: %v, want a rate limit", err)
	}
}

// A password change goes through the bounded hasher and is limited per
// account (review #4).
func TestChangePasswordLimited(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	a, err := s.AddAccount(ctx, "vic", "viewer", "viewerpassword1")
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{Account: a}
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ChangePassword(ctx, p, fmt.Sprintf("guess%d", i), "another long password"); errors.Is(err, ErrWrongCurrentPassword) {
				wrong.Add(1)
			}
		}()
	}
	wg.Wait()
	if wrong.Load() > 5 {
		t.Errorf("%d current-password guesses evaluated, want at most 5", wrong.Load())
	}
	// The hasher's queue is bounded: past it, ErrBusy at once.
	for range hashers {
		s.hashing <- struct{}{}
	}
	s.queued.Store(maxQueued)
	if _, err := s.verify(ctx, s.dummy, "x"); !errors.Is(err, ErrBusy) {
		t.Errorf("verify with a full queue: %v, want ErrBusy", err)
	}
	s.queued.Store(0)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.verify(cctx, s.dummy, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("verify while every slot is busy: %v, want to give up with the request", err)
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
	// Another holder of the key cannot take the id over (review #1)...
	if _, _, err := s.Enroll(ctx, key, "d1", "evil"); !errors.Is(err, ErrDeviceExists) || !strings.Contains(err.Error(), "allow-reenroll") {
		t.Errorf("takeover err = %v, want ErrDeviceExists saying what to do", err)
	}
	if got, err := s.Device(ctx, tok); err != nil || got.Name != "laptop" {
		t.Errorf("the device after a refused takeover = %+v, %v", got, err)
	}
	// ...the device itself can, proving its token; the old token stops.
	tok2, _, err := s.EnrollDevice(ctx, EnrollRequest{Key: key, DeviceID: "d1", Name: "laptop", CurrentToken: tok})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Device(ctx, tok); !errors.Is(err, ErrBadDeviceToken) {
		t.Errorf("old token after re-enroll: %v", err)
	}
	if log, _ := s.st.AuditLog(ctx, 10); len(log) == 0 || log[0].Action != "device.tokenReplaced" {
		t.Errorf("audit log = %+v, want the token replacement", log)
	}
	tok = tok2
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
