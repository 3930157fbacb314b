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
	"strings"
	"sync"
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
	// LoginBurst failed logins per client address or account name, then one
	// more per LoginEvery (defaults 5 and 1 minute).
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
	limiter *limiter
	hashing chan struct{} // bounds concurrent argon2 work (memory)
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
		hashing: make(chan struct{}, 2), devices: map[string]cachedDevice{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.dummy, _ = HashPassword(RandomPassword(), cfg.Argon2)
	return s
}

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

// RateLimitedError says when a client may try to sign in again.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many failed sign-ins; try again in %s", e.RetryAfter.Round(time.Second))
}

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

func (s *Service) hash(pw string) (string, error) {
	s.hashing <- struct{}{}
	defer s.doneHashing()
	return HashPassword(pw, s.cfg.Argon2)
}

func (s *Service) verify(encoded, pw string) (bool, error) {
	s.hashing <- struct{}{}
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
	h, err := s.hash(password)
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
	h, err := s.hash(password)
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

// Login checks a password (rate limited per client address and per account
// name) and starts a session. The returned secret goes in the cookie.
func (s *Service) Login(ctx context.Context, name, password, client string) (secret string, p Principal, err error) {
	now := s.now()
	for _, k := range []string{"addr:" + client, "name:" + strings.ToLower(name)} {
		if w := s.limiter.wait(k, now); w > 0 {
			return "", p, &RateLimitedError{RetryAfter: w}
		}
	}
	fail := func() {
		s.limiter.fail("addr:"+client, now)
		s.limiter.fail("name:"+strings.ToLower(name), now)
		s.log.Warn("failed sign-in", "account", name, "client", client)
	}
	a, err := s.st.Account(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		// Same work as a real check, so timing does not tell which names exist.
		_, _ = s.verify(s.dummy, password)
		fail()
		return "", p, ErrBadCredentials
	}
	if err != nil {
		return "", p, err
	}
	ok, err := s.verify(a.PasswordHash, password)
	if err != nil {
		return "", p, err
	}
	if !ok {
		fail()
		return "", p, ErrBadCredentials
	}
	secret, hash := NewSecret("")
	csrf, _ := NewSecret("")
	se := store.Session{IDHash: hash, AccountID: a.ID, CSRF: csrf, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionIdle)}
	if err := s.st.CreateSession(ctx, se); err != nil {
		return "", p, err
	}
	return secret, Principal{Account: a, Session: hash, CSRF: csrf}, nil
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

// Enroll exchanges an enrollment key for a new device token.
func (s *Service) Enroll(ctx context.Context, key, deviceID, name string) (string, store.Device, error) {
	if err := CheckDeviceID(deviceID); err != nil {
		return "", store.Device{}, err
	}
	if name == "" {
		name = deviceID
	}
	if len(name) > 255 {
		name = name[:255]
	}
	secret, hash := NewSecret(PrefixDeviceToken)
	d, err := s.st.Enroll(ctx, HashSecret(key), store.Device{ID: deviceID, Name: name, TokenHash: hash})
	if err != nil {
		return "", d, err
	}
	s.ForgetDevice(deviceID) // the old token of a re-enrolled device
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

// EnrollFrom is Enroll with failed attempts rate limited per client
// address (a wrong key costs a token; right keys never wait).
func (s *Service) EnrollFrom(ctx context.Context, key, deviceID, name, client string) (string, store.Device, error) {
	now := s.now()
	if w := s.limiter.wait("enroll:"+client, now); w > 0 {
		return "", store.Device{}, &RateLimitedError{RetryAfter: w}
	}
	tok, d, err := s.Enroll(ctx, key, deviceID, name)
	if errors.Is(err, store.ErrKeyInvalid) {
		s.limiter.fail("enroll:"+client, now)
		s.log.Warn("enrollment with a bad key", "client", client, "device", deviceID)
	}
	return tok, d, err
}
