// Package auth owns who may do what on the console: local accounts
// (argon2id passwords, roles admin and viewer), browser sessions with CSRF
// tokens, API tokens for automation, failed-login rate limiting, enrollment
// keys and the per-device tokens that the feed and ingest accept. Every
// secret is stored hashed.
package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netward/netward/console/store"
)

// Config configures the Service.
type Config struct {
	Store *store.Store
	Log   *slog.Logger
	Now   func() time.Time
	// Argon2 defaults to DefaultArgon2 (tests pass cheaper parameters).
	Argon2 Argon2Params
	// SessionIdle ends a session unused this long (default 12 h);
	// SessionMax ends any session this long after sign-in (default 7 days).
	SessionIdle, SessionMax time.Duration
	// LoginBurst failed sign-ins per client (IPv4 address or IPv6 /64),
	// then one more per LoginEvery (defaults 5 and 1 minute). An account
	// takes AccountBurstFactor × LoginBurst failures from clients it was
	// never signed in from, then slows down to one attempt per
	// LoginEvery / AccountBurstFactor: a spray from many addresses is
	// slowed, and no one can lock the account out for the clients it is
	// used from (they are never slowed by others' failures).
	LoginBurst int
	LoginEvery time.Duration
	// DeviceCacheTTL is how long a device token lookup is reused (default
	// 10 s). Revocation through this Service takes effect at once; through
	// another replica within the TTL.
	DeviceCacheTTL time.Duration
}

// Service is the console's authentication and authorisation.
type Service struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	now     func() time.Time
	limiter *limiter      // per client; per account for password changes
	slow    *limiter      // per account, for clients it was never used from
	known   knownClients  // clients each account signed in from
	hashing chan struct{} // bounds concurrent argon2 work (memory)
	queued  atomic.Int64  // requests waiting for a hashing slot
	dummy   string        // verified for unknown names, with the same cost

	mu      sync.Mutex
	devices map[string]cachedDevice // token hash → device
}

type cachedDevice struct {
	dev store.Device
	exp time.Time
}

// New builds the Service; it starts nothing.
func New(cfg Config) *Service {
	if cfg.Argon2.Time == 0 {
		cfg.Argon2 = DefaultArgon2
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 12 * time.Hour
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = 7 * 24 * time.Hour
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = 5
	}
	if cfg.LoginEvery <= 0 {
		cfg.LoginEvery = time.Minute
	}
	if cfg.DeviceCacheTTL <= 0 {
		cfg.DeviceCacheTTL = 10 * time.Second
	}
	s := &Service{cfg: cfg, st: cfg.Store, log: cfg.Log, now: cfg.Now, limiter: newLimiter(cfg.LoginBurst, cfg.LoginEvery),
		slow:    newLimiter(AccountBurstFactor*cfg.LoginBurst, cfg.LoginEvery/AccountBurstFactor),
		known:   knownClients{seen: map[string]time.Time{}},
		hashing: make(chan struct{}, hashers), devices: map[string]cachedDevice{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.dummy, _ = HashPassword(RandomPassword(), cfg.Argon2)
	return s
}

// AccountBurstFactor: see Config.LoginBurst.
const AccountBurstFactor = 4

// hashers is how many argon2 computations run at once (64 MiB each with
// the default cost); maxQueued how many more may wait for one before a
// request is answered 503 at once.
const (
	hashers   = 2
	maxQueued = 16
)

// Errors callers map to HTTP statuses.
var (
	ErrUnauthenticated = errors.New("sign in first (session cookie) or send an API token (Authorization: Bearer nwt_…)")
	ErrBadCredentials  = errors.New("wrong account name or password")
	ErrForbidden       = errors.New("this needs the admin role; viewers can read but not change anything")
	ErrCSRF            = errors.New("missing or wrong CSRF token: send the session's csrfToken in the X-CSRF-Token header")
	ErrBadDeviceToken  = errors.New("unknown device token: enroll the device (netward enroll)")
	ErrRevoked         = errors.New("this device was revoked by an admin")
	ErrBadDeviceID     = errors.New("bad device id")
)

// RateLimitedError says when a client may try again.
type RateLimitedError struct {
	RetryAfter time.Duration
	// What was limited ("" : sign-ins).
	What string
}

func (e *RateLimitedError) Error() string {
	what := e.What
	if what == "" {
		what = "too many failed sign-ins"
	}
	return fmt.Sprintf("%s; try again in %s", what, max(time.Second, e.RetryAfter.Round(time.Second)))
}

// ErrBusy: every password-hashing slot is taken and the queue is full.
var ErrBusy = errors.New("the console is busy checking other passwords; retry in a few seconds")

// ErrWrongCurrentPassword: a password change with the wrong current one.
var ErrWrongCurrentPassword = errors.New("the current password is wrong")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// CheckName says what is wrong with an account name, or nil.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("account name %q: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name)
	}
	return nil
}

// CheckRole says what is wrong with a role, or nil.
func CheckRole(role string) error {
	if role != store.RoleAdmin && role != store.RoleViewer {
		return fmt.Errorf("role %q: want admin or viewer", role)
	}
	return nil
}

// Every password hash and check goes through hash or verify: at most
// `hashers` at once, at most `maxQueued` waiting (then ErrBusy), a waiter
// leaves when its request ends.
func (s *Service) acquireHasher(ctx context.Context) error {
	if s.queued.Add(1) > maxQueued {
		s.queued.Add(-1)
		return ErrBusy
	}
	defer s.queued.Add(-1)
	select {
	case s.hashing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) hash(ctx context.Context, pw string) (string, error) {
	if err := s.acquireHasher(ctx); err != nil {
		return "", err
	}
	defer s.doneHashing()
	return HashPassword(pw, s.cfg.Argon2)
}

func (s *Service) verify(ctx context.Context, encoded, pw string) (bool, error) {
	if err := s.acquireHasher(ctx); err != nil {
		return false, err
	}
	defer s.doneHashing()
	return VerifyPassword(encoded, pw)
}

// doneHashing hands argon2's 64 MiB back to the system at once: sign-ins
// are rare, and a console otherwise keeps that much resident for minutes
// after each one.
func (s *Service) doneHashing() {
	<-s.hashing
	debug.FreeOSMemory()
}

// AddAccount creates an account after checking name, role and password.
func (s *Service) AddAccount(ctx context.Context, name, role, password string) (store.Account, error) {
	if err := CheckName(name); err != nil {
		return store.Account{}, err
	}
	if err := CheckRole(role); err != nil {
		return store.Account{}, err
	}
	if err := CheckPassword(password); err != nil {
		return store.Account{}, err
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return store.Account{}, err
	}
	return s.st.CreateAccount(ctx, name, role, h)
}

// SetPassword replaces an account's password (CLI reset, or a signed-in
// change after VerifyCurrent); other sessions of the account end.
func (s *Service) SetPassword(ctx context.Context, name, password, keepSession string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	a, err := s.st.Account(ctx, name)
	if err != nil {
		return err
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	return s.st.SetPassword(ctx, a.ID, h, keepSession)
}

// Bootstrap creates the first admin with a random password when the store
// has no account; the password is returned to be printed once.
func (s *Service) Bootstrap(ctx context.Context) (name, password string, err error) {
	n, err := s.st.CountAccounts(ctx)
	if err != nil || n > 0 {
		return "", "", err
	}
	password = RandomPassword()
	if _, err := s.AddAccount(ctx, "admin", store.RoleAdmin, password); err != nil {
		if errors.Is(err, store.ErrExists) {
			return "", "", nil // another replica made it
		}
		return "", "", err
	}
	return "admin", password, nil
}

// Principal is who a request acts as.
type Principal struct {
	Account store.Account
	// Session is the session hash ("" for an API token); CSRF its token.
	Session string
	CSRF    string
	Token   string // API token name, for the audit log
}

// Admin reports whether p may change things.
func (p Principal) Admin() bool { return p.Account.Role == store.RoleAdmin }

// Actor names p in the audit log.
func (p Principal) Actor() string {
	if p.Token != "" {
		return p.Account.Name + " (token " + p.Token + ")"
	}
	return p.Account.Name
}

// SessionCookie is the browser session cookie's name.
const SessionCookie = "netward_session"

// Login checks a password and starts a session; the returned secret goes
// in the cookie. Limits (docs/console.md "Roles and sessions"): each
// attempt first takes a token from its client's bucket and, unless the
// client signed in to this account before, from the account's slow-down
// bucket — atomically, before any hashing — and a success gives them back.
func (s *Service) Login(ctx context.Context, name, password, client string) (secret string, p Principal, err error) {
	now := s.now()
	ck := clientKey(client)
	acct := strings.ToLower(name)
	if w := s.limiter.take("addr:"+ck, now); w > 0 {
		return "", p, &RateLimitedError{RetryAfter: w, What: "too many failed sign-ins from this address"}
	}
	known := s.known.known(acct, ck, now)
	if !known {
		if w := s.slow.take("name:"+acct, now); w > 0 {
			s.limiter.give("addr:" + ck)
			s.log.Warn("sign-in slowed down: many failures for this account from many addresses", "account", name, "client", client)
			return "", p, &RateLimitedError{RetryAfter: w, What: "many failed sign-ins for this account; it is slowed down"}
		}
	}
	refund := func() {
		s.limiter.give("addr:" + ck)
		if !known {
			s.slow.give("name:" + acct)
		}
	}
	fail := func() {
		s.log.Warn("failed sign-in", "account", name, "client", client)
	}
	a, err := s.st.Account(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		// Same work as a real check, so timing does not tell which names exist.
		if _, err := s.verify(ctx, s.dummy, password); err != nil {
			refund()
			return "", p, err
		}
		fail()
		return "", p, ErrBadCredentials
	}
	if err != nil {
		refund()
		return "", p, err
	}
	ok, err := s.verify(ctx, a.PasswordHash, password)
	if err != nil {
		refund()
		return "", p, err
	}
	if !ok {
		fail()
		return "", p, ErrBadCredentials
	}
	refund()
	s.known.add(acct, ck, now)
	secret, hash := NewSecret("")
	csrf, _ := NewSecret("")
	se := store.Session{IDHash: hash, AccountID: a.ID, CSRF: csrf, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionIdle)}
	if err := s.st.CreateSession(ctx, se); err != nil {
		return "", p, err
	}
	return secret, Principal{Account: a, Session: hash, CSRF: csrf}, nil
}

// ChangePassword replaces p's password after checking the current one:
// through the bounded hasher, and limited per account like sign-in (a
// stolen session or API token cannot guess the password at full speed).
// Other sessions of the account end.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, newPassword string) error {
	if err := CheckPassword(newPassword); err != nil {
		return err
	}
	key := "passwd:" + strconv.FormatInt(p.Account.ID, 10)
	if w := s.limiter.take(key, s.now()); w > 0 {
		return &RateLimitedError{RetryAfter: w, What: "too many wrong current passwords for this account"}
	}
	ok, err := s.verify(ctx, p.Account.PasswordHash, current)
	if err != nil {
		s.limiter.give(key)
		return err
	}
	if !ok {
		s.log.Warn("password change with a wrong current password", "account", p.Account.Name, "actor", p.Actor())
		return ErrWrongCurrentPassword
	}
	s.limiter.give(key)
	return s.SetPassword(ctx, p.Account.Name, newPassword, p.Session)
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if p.Session == "" {
		return nil
	}
	return s.st.DeleteSession(ctx, p.Session)
}

// Authenticate finds the principal of a request: an API token in
// Authorization: Bearer, else the session cookie. State-changing requests
// on a session must carry its CSRF token (X-CSRF-Token header or the
// csrf_token form field); API tokens are not ambient credentials and need
// none.
func (s *Service) Authenticate(r *http.Request) (Principal, error) {
	ctx := r.Context()
	now := s.now()
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if !strings.HasPrefix(tok, PrefixAPIToken) {
			return Principal{}, ErrUnauthenticated
		}
		t, a, err := s.st.APITokenAccount(ctx, HashSecret(tok), now)
		if errors.Is(err, store.ErrNotFound) {
			return Principal{}, ErrUnauthenticated
		}
		if err != nil {
			return Principal{}, err
		}
		return Principal{Account: a, Token: t.Name}, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Principal{}, ErrUnauthenticated
	}
	hash := HashSecret(c.Value)
	se, a, err := s.st.SessionAccount(ctx, hash, now)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	if now.Sub(se.CreatedAt) > s.cfg.SessionMax {
		_ = s.st.DeleteSession(ctx, hash)
		return Principal{}, ErrUnauthenticated
	}
	// Slide the idle expiry, at most once a minute per session.
	if next := now.Add(s.cfg.SessionIdle); next.Sub(se.ExpiresAt) > time.Minute {
		_ = s.st.ExtendSession(ctx, hash, next)
	}
	p := Principal{Account: a, Session: hash, CSRF: se.CSRF}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		got := r.Header.Get("X-CSRF-Token")
		if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			got = r.PostFormValue("csrf_token")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(se.CSRF)) != 1 {
			return Principal{}, ErrCSRF
		}
	}
	return p, nil
}

// SetCookie writes the session cookie: HttpOnly (no script reads it),
// Secure (HTTPS only) and SameSite=Strict (no cross-site request carries
// it; the CSRF token is the second fence).
func (s *Service) SetCookie(w http.ResponseWriter, secret string) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.SessionMax / time.Second)})
}

// ClearCookie removes the session cookie.
func ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// CreateAPIToken makes a token for p's account (expires zero: never).
func (s *Service) CreateAPIToken(ctx context.Context, p Principal, name string, expires time.Time) (string, store.APIToken, error) {
	if strings.TrimSpace(name) == "" || len(name) > 128 {
		return "", store.APIToken{}, errors.New("token name: give 1-128 characters saying what uses it")
	}
	secret, hash := NewSecret(PrefixAPIToken)
	t, err := s.st.CreateAPIToken(ctx, store.APIToken{AccountID: p.Account.ID, Account: p.Account.Name, Name: name, Hash: hash, CreatedAt: s.now(), ExpiresAt: expires})
	return secret, t, err
}

// CreateEnrollKey makes an enrollment key (expires zero: never).
func (s *Service) CreateEnrollKey(ctx context.Context, name, by string, expires time.Time) (string, store.EnrollKey, error) {
	if strings.TrimSpace(name) == "" || len(name) > 128 {
		return "", store.EnrollKey{}, errors.New("key name: give 1-128 characters (e.g. the team or rollout wave)")
	}
	if !expires.IsZero() && !expires.After(s.now()) {
		return "", store.EnrollKey{}, errors.New("expiry is in the past")
	}
	secret, hash := NewSecret(PrefixEnrollKey)
	k, err := s.st.CreateEnrollKey(ctx, store.EnrollKey{Name: name, Hash: hash, CreatedBy: by, CreatedAt: s.now(), ExpiresAt: expires})
	return secret, k, err
}

// idRE is the alphabet of device and chunk ids (CONTRACT §6). The first
// character is a letter or digit, so "." and ".." (and hidden names) are
// never ids: ids become path elements under the data directory.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidID reports whether s may be a device or chunk id.
func ValidID(s string) bool { return idRE.MatchString(s) }

// CheckDeviceID says what is wrong with a device id (it appears in upload
// paths, so CONTRACT §6's id alphabet), or nil.
func CheckDeviceID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrBadDeviceID, id)
	}
	return nil
}

// EnrollRequest is what a device sends to enroll (POST /v1/enroll).
type EnrollRequest struct {
	Key, DeviceID, Name string
	// CurrentToken is the device token the machine holds, if any: it proves
	// that a re-enrollment under an active id comes from that device.
	CurrentToken string
}

// ErrDeviceExists: the id is an active device's and the request did not
// prove its token (see store.Enroll); the error says what to do.
var ErrDeviceExists = errors.New("this device id is already enrolled and the request does not carry its current device token. " +
	"If this machine was reinstalled and lost its token, a console admin must allow a re-enrollment " +
	"(POST /api/devices/{id}/allow-reenroll) or delete the device (DELETE /api/devices/{id}); then enroll again")

// Enroll exchanges an enrollment key for a new device token (no current
// token: a new device, or one an admin allowed to enroll again).
func (s *Service) Enroll(ctx context.Context, key, deviceID, name string) (string, store.Device, error) {
	return s.EnrollDevice(ctx, EnrollRequest{Key: key, DeviceID: deviceID, Name: name})
}

// EnrollDevice exchanges an enrollment key for a new device token. A token
// replaced on an existing device is written to the audit log as such.
func (s *Service) EnrollDevice(ctx context.Context, req EnrollRequest) (string, store.Device, error) {
	if err := CheckDeviceID(req.DeviceID); err != nil {
		return "", store.Device{}, err
	}
	name := req.Name
	if name == "" {
		name = req.DeviceID
	}
	if len(name) > 255 {
		name = name[:255]
	}
	current := ""
	if strings.HasPrefix(req.CurrentToken, PrefixDeviceToken) {
		current = HashSecret(req.CurrentToken)
	}
	secret, hash := NewSecret(PrefixDeviceToken)
	d, kind, err := s.st.Enroll(ctx, HashSecret(req.Key), store.Device{ID: req.DeviceID, Name: name, TokenHash: hash}, current)
	if errors.Is(err, store.ErrDeviceEnrolled) {
		return "", d, fmt.Errorf("device %q: %w", req.DeviceID, ErrDeviceExists)
	}
	if err != nil {
		return "", d, err
	}
	s.ForgetDevice(req.DeviceID) // the old token of a re-enrolled device
	if kind != store.EnrolledNew {
		how := "the request proved the current device token"
		if kind == store.ReenrolledAllowed {
			how = "an admin allowed a re-enrollment"
		}
		if err := s.st.Audit(ctx, store.AuditEntry{Actor: "device " + d.ID, Action: "device.tokenReplaced", Target: d.ID, Detail: how}); err != nil {
			s.log.Error("audit log not written", "err", err)
		}
	}
	return secret, d, nil
}

// Device returns the device a bearer token belongs to; revoked devices and
// unknown tokens are errors.
func (s *Service) Device(ctx context.Context, token string) (store.Device, error) {
	if !strings.HasPrefix(token, PrefixDeviceToken) {
		return store.Device{}, ErrBadDeviceToken
	}
	hash := HashSecret(token)
	now := s.now()
	s.mu.Lock()
	c, ok := s.devices[hash]
	s.mu.Unlock()
	if !ok || now.After(c.exp) {
		d, err := s.st.DeviceByToken(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return store.Device{}, ErrBadDeviceToken
		}
		if err != nil {
			return store.Device{}, err
		}
		c = cachedDevice{dev: d, exp: now.Add(s.cfg.DeviceCacheTTL)}
		s.mu.Lock()
		if len(s.devices) > 200000 {
			clear(s.devices)
		}
		s.devices[hash] = c
		s.mu.Unlock()
	}
	if c.dev.Revoked() {
		return c.dev, ErrRevoked
	}
	return c.dev, nil
}

// ForgetDevice drops a device's cached token lookups (after a revocation).
func (s *Service) ForgetDevice(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, c := range s.devices {
		if c.dev.ID == id {
			delete(s.devices, h)
		}
	}
}

// BearerToken returns the request's bearer token ("" if none).
func BearerToken(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(tok)
}

// EnrollFrom is Enroll with failed attempts rate limited per client (a
// wrong key costs a token, taken before the key is checked so concurrent
// attempts cannot pass together; right keys give theirs back).
func (s *Service) EnrollFrom(ctx context.Context, req EnrollRequest, client string) (string, store.Device, error) {
	key := "enroll:" + clientKey(client)
	if w := s.limiter.take(key, s.now()); w > 0 {
		return "", store.Device{}, &RateLimitedError{RetryAfter: w, What: "too many enrollments with a wrong key from this address"}
	}
	tok, d, err := s.EnrollDevice(ctx, req)
	if errors.Is(err, store.ErrKeyInvalid) || errors.Is(err, ErrDeviceExists) {
		s.log.Warn("enrollment refused", "client", client, "device", req.DeviceID, "err", err)
		return tok, d, err
	}
	s.limiter.give(key)
	return tok, d, err
}
