package indicators

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/netward/netward/filter"
)

// BuiltinDemo is the source of the demo indicator set compiled into the
// binary; the embedded default config (CONTRACT §3) uses it.
const BuiltinDemo = "builtin:demo"

//go:embed builtin/demo.json
var demoFeed []byte

// DemoFeed returns the embedded demo indicator set (a CONTRACT §5 document
// naming only RFC 2606 / RFC 5737 documentation names and addresses).
func DemoFeed() []byte { return bytes.Clone(demoFeed) }

// Defaults of SyncConfig.
const (
	// DefaultMaxBody fits the documented scale (a signed feed of 1,000,000
	// indicators is 175 MB of JSON) and no more: a body is held whole in
	// memory until its signature is checked.
	DefaultMaxBody      = 192 << 20
	DefaultLongPoll     = 60 * time.Second
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 5 * time.Minute
	DefaultFileInterval = 250 * time.Millisecond
	// DefaultMaxDropPercent is SyncConfig.MaxDropPercent's default
	// (config indicators.maxDropPercent).
	DefaultMaxDropPercent = 50
	// NoInvalidEntries is the MaxDropPercent that refuses any set with an
	// invalid entry (config indicators.maxDropPercent 0).
	NoInvalidEntries = -1
	// DefaultMaxAge is SyncConfig.MaxAge's default (72 hours).
	DefaultMaxAge = 72 * time.Hour
	// stateSaveEvery bounds how often a freshness proof that only moves
	// FreshAt forward is written to the store (a long-polling agent gets
	// one per minute).
	stateSaveEvery = 10 * time.Minute
)

// SyncConfig configures a Sync.
type SyncConfig struct {
	// Source is where the set comes from: an http(s) feed URL (CONTRACT §5),
	// file:///path (watched for changes; any format Parse detects except a
	// catalog, which needs tags), or BuiltinDemo.
	Source string
	// Token is the device's bearer token for an http(s) feed.
	Token string
	// PublicKey, when set, makes every http(s) body carry a valid
	// Netward-Signature; unsigned or badly signed bodies are rejected and
	// the last good set stays. It is checked again when the stored set is
	// restored. file:// and builtin sources are trusted as local files.
	PublicKey ed25519.PublicKey
	// MaxBody bounds a feed body or file (default DefaultMaxBody). A bigger
	// body is rejected without being read to the end.
	MaxBody int64
	// LongPoll is the ?wait sent to the feed (default DefaultLongPoll).
	LongPoll time.Duration
	// MinBackoff and MaxBackoff bound the exponential back-off (with
	// jitter) after a failed fetch.
	MinBackoff, MaxBackoff time.Duration
	// FileInterval is how often a file:// source is checked for changes; a
	// change is applied once the file has been still for one interval
	// (debounce: editors and copy tools write in several steps).
	FileInterval time.Duration
	// Action is given to entries of hosts files and domain lists read from a
	// file:// source (default Block).
	Action filter.Action
	// AllowDefaultRoute accepts IpAddress indicators of a whole address
	// family (0.0.0.0/0, ::/0); see Options.AllowDefaultRoute.
	AllowDefaultRoute bool
	// MaxDropPercent refuses a new set when its invalid entries number more
	// than this percentage of the indicators in force: a source that
	// breaks (a stray quote, a bad export) must not switch blocking off. A
	// set with no valid entry at all but some invalid ones is always
	// refused. Entries removed on purpose are not invalid entries and do
	// not count. 0 selects DefaultMaxDropPercent; NoInvalidEntries refuses
	// any set with an invalid entry while a set is in force; 100 allows
	// any share.
	MaxDropPercent int
	// MaxAge is how old the console's latest proof that the set held is
	// current may be before status reports the set stale (default
	// DefaultMaxAge; config indicators.maxAgeHours). A stale set stays in
	// force. https feeds only: file:// and builtin: sources are exempt.
	MaxAge time.Duration
	// Agent is the check-in sent as the Netward-Agent header with every
	// feed request (CONTRACT §5); Sync fills in Seq.
	Agent AgentInfo
	// OnError is told about every failure to read or accept the source
	// (once per distinct message until a success); the agent lists them in
	// `netward status`. It must not block.
	OnError func(error)

	// Client, when set, is used as is for http(s) feeds. Otherwise a client
	// is built whose sockets run Control (the agent passes
	// hostnet.MarkControl(hostnet.AgentMark) so its own traffic is exempt
	// from capture and inspection) and whose host-name lookups go straight
	// to the host's resolvers with the same Control (see feedResolver), never
	// through netward's own DNS proxy.
	Client  *http.Client
	Control func(network, address string, c syscall.RawConn) error
	// RootCAs verifies the feed's TLS certificate (nil: the system roots).
	RootCAs *x509.CertPool

	// Store, when set, receives every set that compiled, and Restore reads
	// the last good set from it.
	Store *Store
	// Apply receives every new set, in order, from Restore and Run's
	// goroutine. It must not block for long.
	Apply func(Update)
	Log   *slog.Logger
	Now   func() time.Time
}

// Update is a new indicator set, parsed, validated and compiled.
type Update struct {
	Source    string
	Version   string
	FetchedAt time.Time
	// FromStore is true for the set Restore read from the store.
	FromStore bool
	// Set is the parsed set (with its settings and problems); Policy is it
	// compiled at FetchedAt. NextExpiry is when an indicator of Policy
	// expires (zero: never): compile Set again at that instant.
	Set        *Set
	Policy     *filter.Policy
	NextExpiry time.Time
}

// SyncStatus is what `netward status` shows about the sync.
type SyncStatus struct {
	Source    string    `json:"source"`
	Version   string    `json:"version"`
	FetchedAt time.Time `json:"fetchedAt"`
	// LastCheck is the last time the source answered (200 or 304).
	LastCheck   time.Time `json:"lastCheck"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt"`
	// Failures counts consecutive failed fetches (0 after a success).
	Failures int `json:"failures"`
	// Sequence is the highest feed sequence accepted (the rollback floor;
	// 0: unsequenced feed, or not an https source).
	Sequence uint64 `json:"sequence"`
	// FreshAt is the latest time the console vouched that the set held is
	// its current one; Stale is true once that is older than MaxAge. Both
	// apply to https feeds only (zero and false otherwise).
	FreshAt time.Time `json:"freshAt"`
	Stale   bool      `json:"stale"`
	// FreshnessError says why the last answer did not prove freshness
	// (no or bad Netward-Freshness header, a replayed one).
	FreshnessError string `json:"freshnessError,omitempty"`
}

// Errors a fetch can end with; each leaves the last good set in force.
var (
	ErrSignature = errors.New("indicator set rejected: signature check failed")
	ErrTooLarge  = errors.New("indicator set rejected: larger than the size limit")
	// ErrInvalidEntries: the set's invalid entries would drop too much of
	// the set in force (SyncConfig.MaxDropPercent), or it has no valid one.
	ErrInvalidEntries = errors.New("indicator set rejected: too many invalid entries")
	// ErrRollback: the body's sequence is lower than the one held, or
	// equal with another version (CONTRACT §5) — a replayed older set.
	ErrRollback = errors.New("indicator set rejected: older than the set in force (rollback)")
)

// Sync follows one indicator source and hands every new compiled set to
// Apply. NewSync starts nothing; Restore enforces the stored set; Run
// follows the source until its context ends.
type Sync struct {
	cfg    SyncConfig
	log    *slog.Logger
	now    func() time.Time
	client *http.Client

	// applyMu orders accept calls: Run and Reload may both bring a body,
	// and the one applied last must be the one the status names.
	applyMu sync.Mutex

	mu     sync.Mutex
	status SyncStatus
	sum    [sha256.Size]byte // of the body in force (file sources skip re-applying it)
	held   int               // indicators of the set in force, for MaxDropPercent
	noted  string            // the last failure handed to OnError
	// state is the rollback floor and freshness (https feeds); saved is
	// what the store holds of it.
	state, saved FeedState
	keyID        string
}

// NewSync checks cfg and returns a Sync that has not started anything.
func NewSync(cfg SyncConfig) (*Sync, error) {
	if cfg.Source == "" {
		return nil, errors.New("indicators: no source; set indicators.source to an https:// feed, file:///path or builtin:demo")
	}
	if cfg.Apply == nil {
		return nil, errors.New("indicators: SyncConfig.Apply is nil")
	}
	if cfg.PublicKey != nil && len(cfg.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("indicators: public key has %d bytes; want a %d-byte Ed25519 key", len(cfg.PublicKey), ed25519.PublicKeySize)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.LongPoll <= 0 {
		cfg.LongPoll = DefaultLongPoll
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.FileInterval <= 0 {
		cfg.FileInterval = DefaultFileInterval
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	switch {
	case cfg.MaxDropPercent == 0:
		cfg.MaxDropPercent = DefaultMaxDropPercent
	case cfg.MaxDropPercent == NoInvalidEntries:
		cfg.MaxDropPercent = 0
	case cfg.MaxDropPercent < 0 || cfg.MaxDropPercent > 100:
		return nil, fmt.Errorf("indicators: MaxDropPercent %d is outside 0..100", cfg.MaxDropPercent)
	}
	s := &Sync{cfg: cfg, log: cfg.Log, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch kind, _, err := sourceKind(cfg.Source); {
	case err != nil:
		return nil, err
	case kind == kindHTTP:
		s.client = cfg.Client
		if s.client == nil {
			s.client = feedClient(cfg.Control, cfg.RootCAs)
		}
	}
	s.status.Source = cfg.Source
	s.keyID = floorKeyID(cfg.PublicKey, cfg.Source)
	s.state.KeyID = s.keyID
	return s, nil
}

// floorKeyID names what a rollback floor belongs to: the feed's signing key,
// or for an unsigned feed its URL. A new key resets the floor (CONTRACT §5:
// the recovery after a console is restored without its sequence).
func floorKeyID(pub ed25519.PublicKey, source string) string {
	if pub == nil {
		return "source:" + source
	}
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:])
}

type kind int

const (
	kindHTTP kind = iota
	kindFile
	kindBuiltin
)

// sourceKind classifies a source; for file:// it returns the path.
func sourceKind(src string) (kind, string, error) {
	if src == BuiltinDemo {
		return kindBuiltin, "", nil
	}
	u, err := url.Parse(src)
	if err != nil {
		return 0, "", fmt.Errorf("indicators.source %q: %w", src, err)
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return 0, "", fmt.Errorf("indicators.source %q has no host", src)
		}
		return kindHTTP, "", nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return 0, "", fmt.Errorf("indicators.source %q: a file URL needs three slashes and an absolute path, like file:///etc/netward/indicators.csv", src)
		}
		p := u.Path
		// file:///C:/dir/x.csv has the path /C:/dir/x.csv (RFC 8089 appendix E.2).
		if len(p) >= 3 && p[0] == '/' && p[2] == ':' {
			p = p[1:]
		}
		if p == "" {
			return 0, "", fmt.Errorf("indicators.source %q names no file", src)
		}
		return kindFile, p, nil
	}
	return 0, "", fmt.Errorf("indicators.source %q: use an https:// feed URL, file:///path or %s", src, BuiltinDemo)
}

// Status returns the sync's state.
func (s *Sync) Status() SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	if kindOf(s.cfg.Source) == kindHTTP {
		st.Sequence, st.FreshAt = s.state.Seq, s.state.FreshAt
		st.Stale = st.Version != "" && s.now().Sub(st.FreshAt) > s.cfg.MaxAge
	}
	return st
}

func (s *Sync) version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status.Version
}

func (s *Sync) fail(err error) {
	s.mu.Lock()
	s.status.LastError = err.Error()
	s.status.LastErrorAt = s.now()
	s.status.Failures++
	tell := s.cfg.OnError != nil && err.Error() != s.noted
	s.noted = err.Error()
	s.mu.Unlock()
	if tell {
		s.cfg.OnError(err)
	}
}

// checked records a good answer that brought no new set (304, or the same
// body again): the source works, so an earlier failure is over (issue 23:
// status said "source failing" until the next set was published).
func (s *Sync) checked() {
	s.mu.Lock()
	s.status.LastCheck = s.now()
	s.status.LastError = ""
	s.status.Failures = 0
	s.noted = ""
	s.mu.Unlock()
}

// Restore enforces the last good set from the store, without touching the
// network: its signature is checked again when a public key is configured,
// then it is compiled and handed to Apply. It reports whether a set was
// applied. A stored set that fails is logged and ignored (the feed will
// replace it).
func (s *Sync) Restore() (bool, error) {
	if s.cfg.Store == nil {
		return false, nil
	}
	s.restoreState()
	r, ok, err := s.cfg.Store.Load()
	if err != nil {
		return false, fmt.Errorf("read the stored indicator set: %w", err)
	}
	if !ok {
		return false, nil
	}
	if s.cfg.PublicKey != nil && kindOf(r.Source) == kindHTTP {
		if err := Verify(s.cfg.PublicKey, r.Body, r.Signature); err != nil {
			return false, fmt.Errorf("stored indicator set %s from %s: %w; it is not used", r.Version, r.Source, err)
		}
	}
	// Compiled now, not as of its fetch: what expired meanwhile stays out.
	u, err := s.compile(r.Source, r.Body, s.now())
	if err != nil {
		return false, fmt.Errorf("stored indicator set %s from %s: %w; it is not used", r.Version, r.Source, err)
	}
	u.FromStore = true
	u.FetchedAt = r.FetchedAt
	// The stored set stands for the configured source only if it came from
	// it; otherwise Run fetches without If-None-Match.
	s.mu.Lock()
	if r.Source == s.cfg.Source {
		s.status.Version = u.Version
		s.status.FetchedAt = r.FetchedAt
		s.sum = sha256.Sum256(r.Body)
		if kindOf(r.Source) == kindHTTP {
			// A store written before the feed state existed (or whose
			// state was lost) still has the set: its own sequence and
			// generatedAt are a floor and a proof of freshness.
			if st, err := s.advance(s.state, u); err == nil {
				s.state = st
			}
		}
	}
	s.held = len(u.Set.Indicators)
	s.mu.Unlock()
	s.cfg.Apply(u)
	return true, nil
}

// restoreState adopts the stored rollback floor and freshness when they
// belong to the configured key (or unsigned source); a different key
// starts a new floor, and says so.
func (s *Sync) restoreState() {
	st, err := s.cfg.Store.LoadState()
	if err != nil {
		s.log.Warn("feed state not read; the rollback floor starts again from the next set", "err", err)
		return
	}
	switch {
	case st.KeyID == "":
	case st.KeyID != s.keyID:
		s.log.Warn("the feed's signing key (or unsigned source) changed: the rollback floor is reset (CONTRACT §5)",
			"previousSequence", st.Seq, "previous", st.KeyID, "now", s.keyID)
	default:
		s.mu.Lock()
		s.state, s.saved = st, st
		s.mu.Unlock()
	}
}

// IsFeedSource reports whether src is an http(s) feed: the sources the
// rollback and freshness rules of CONTRACT §5 apply to (file:// and
// builtin: are exempt).
func IsFeedSource(src string) bool { return kindOf(src) == kindHTTP }

func kindOf(src string) kind {
	k, _, err := sourceKind(src)
	if err != nil {
		return -1
	}
	return k
}

// compile parses body as it came from src and compiles it at now.
func (s *Sync) compile(src string, body []byte, now time.Time) (Update, error) {
	k, path, err := sourceKind(src)
	if err != nil {
		return Update{}, err
	}
	format := FormatFeed
	name := src
	if k == kindFile {
		format = DetectFormat(path, body)
		name = path
	}
	set, err := Parse(name, body, format, "", nil, Options{Action: s.cfg.Action, Now: now, AllowDefaultRoute: s.cfg.AllowDefaultRoute})
	if err != nil {
		return Update{}, err
	}
	if set.Version == "" {
		sum := sha256.Sum256(body)
		set.Version = "sha256-" + hex.EncodeToString(sum[:8])
	}
	p, next, err := set.Compile(now)
	if err != nil {
		return Update{}, err
	}
	return Update{Source: src, Version: set.Version, FetchedAt: now, Set: set, Policy: p, NextExpiry: next}, nil
}

// accept compiles a body that passed the transport checks, saves it, and
// applies it. A body that does not parse or compile, or that the rollback
// or invalid-entry rules refuse, changes nothing. fresh is the response's
// Netward-Freshness header (https feeds).
func (s *Sync) accept(body []byte, sig, fresh string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if sha256.Sum256(body) == s.currentSum() {
		return nil // the other path applied it meanwhile
	}
	now := s.now()
	u, err := s.compile(s.cfg.Source, body, now)
	if err != nil {
		return fmt.Errorf("indicator set rejected, the last good set stays: %w", err)
	}
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if kindOf(s.cfg.Source) == kindHTTP {
		if st, err = s.advance(st, u); err != nil {
			return err
		}
		var problem string
		st, problem = s.applyFreshness(st, fresh, u.Version, now)
		s.noteFreshness(problem)
	}
	if err := s.checkInvalid(u.Set); err != nil {
		return err
	}
	if s.cfg.Store != nil {
		// Saved only after it compiled: the store never holds a set that
		// cannot be enforced at the next start.
		if err := s.cfg.Store.Save(Record{Body: body, Version: u.Version, Signature: sig, Source: s.cfg.Source, FetchedAt: now, State: st}); err != nil {
			s.log.Error("indicator set applied but not saved; after a restart the previous stored set applies until the source answers", "version", u.Version, "err", err)
		} else {
			s.mu.Lock()
			s.saved = st
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	s.state = st
	s.status.Version = u.Version
	s.status.FetchedAt = now
	s.status.LastCheck = now
	s.status.LastError = ""
	s.status.Failures = 0
	s.sum = sha256.Sum256(body)
	s.held = len(u.Set.Indicators)
	s.noted = ""
	s.mu.Unlock()
	s.cfg.Apply(u)
	return nil
}

// advance applies the rollback rules of CONTRACT §5 to a new feed set u
// against the floor st: a sequence lower than the floor, or equal to it
// with another version, is a replayed older set and refused. It returns the
// floor with u accepted. An unsequenced feed (sequence 0 while the floor is
// 0) is accepted as before sequences existed; once a feed has sent a
// sequence, a body without one is lower and refused.
func (s *Sync) advance(st FeedState, u Update) (FeedState, error) {
	seq := u.Set.Sequence
	switch {
	case seq < st.Seq:
		return st, fmt.Errorf("%w: its sequence %d is lower than the %d held (version %s); a replayed or stale feed — the set in force stays",
			ErrRollback, seq, st.Seq, st.Version)
	case seq == st.Seq && seq > 0 && u.Version != st.Version:
		return st, fmt.Errorf("%w: its sequence %d is the one held but its version %s is not %s; a console publishes one version per sequence — the set in force stays",
			ErrRollback, seq, u.Version, st.Version)
	}
	st.Seq, st.Version = seq, u.Version
	// A newer set is at least as fresh as the moment it was made (and as
	// the proof for the set it replaces: it was made after that).
	if g := u.Set.GeneratedAt; g.After(st.FreshAt) {
		st.FreshAt = g
	}
	return st, nil
}

// applyFreshness moves st forward with the response's Netward-Freshness
// header fresh, a proof for version (the body's on a 200, the one held on a
// 304). Without a public key the transport is trusted, as it is for the
// body: the answer itself is fresh now. With one, the header must verify
// with the key for version, and its sequence must not be below the floor;
// then its time is how fresh the set held is, and its sequence raises the
// floor (the console may have republished the same content under a later
// sequence). problem says why a header did not count ("" when it did).
func (s *Sync) applyFreshness(st FeedState, fresh, version string, now time.Time) (FeedState, string) {
	if s.cfg.PublicKey == nil {
		if now.After(st.FreshAt) {
			st.FreshAt = now
		}
		return st, ""
	}
	if fresh == "" {
		return st, "the answer carried no " + FreshnessHeader + " header (a console before CONTRACT §5 freshness, or a path that strips it)"
	}
	f, err := ParseFreshness(fresh)
	if err != nil {
		return st, err.Error()
	}
	if err := f.Verify(s.cfg.PublicKey, version); err != nil {
		return st, err.Error()
	}
	if f.Seq < st.Seq {
		return st, fmt.Sprintf("%s for sequence %d, below the %d held: a replayed proof", FreshnessHeader, f.Seq, st.Seq)
	}
	st.Seq = f.Seq
	if f.At.After(st.FreshAt) {
		st.FreshAt = f.At
	}
	return st, ""
}

// noteFreshness records why the last answer did not prove freshness, and
// logs each new reason once.
func (s *Sync) noteFreshness(problem string) {
	s.mu.Lock()
	changed := problem != s.status.FreshnessError
	s.status.FreshnessError = problem
	s.mu.Unlock()
	if changed && problem != "" {
		s.log.Warn("indicator feed answer did not prove freshness; the set stays in force and is reported stale once its last proof is older than indicators.maxAgeHours",
			"source", s.cfg.Source, "problem", problem)
	}
}

// refresh takes the freshness proof of an answer that brought no new set
// (a 304, or the body in force again) for the version held, and saves the
// state when the floor rose or the proof moved on by stateSaveEvery.
func (s *Sync) refresh(fresh, version string) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	st, problem := s.applyFreshness(st, fresh, version, s.now())
	s.noteFreshness(problem)
	s.mu.Lock()
	s.state = st
	save := s.cfg.Store != nil && (st.Seq != s.saved.Seq || st.FreshAt.Sub(s.saved.FreshAt) >= stateSaveEvery)
	s.mu.Unlock()
	if !save {
		return
	}
	if err := s.cfg.Store.SaveState(st); err != nil {
		s.log.Warn("feed freshness not saved; after a restart the set may show stale until the next answer", "err", err)
		return
	}
	s.mu.Lock()
	s.saved = st
	s.mu.Unlock()
}

// agentInfo is the Netward-Agent check-in: the configured agent identity
// and the sequence held.
func (s *Sync) agentInfo() AgentInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.cfg.Agent
	if a.Version == "" {
		a.Version = "unknown"
	}
	a.Seq = s.state.Seq
	return a
}

// checkInvalid refuses a set that its invalid entries make unsafe to
// apply (issue 14 §3): one with no valid entry but some invalid ones (the
// source broke as a whole), or one whose invalid entries number more than
// MaxDropPercent of the indicators in force — a set in force is never
// replaced by what a bad export or a stray quote leaves of it. A smaller set
// published on purpose has no invalid entries and passes.
func (s *Sync) checkInvalid(set *Set) error {
	if set.Rejected == 0 {
		return nil
	}
	first := ""
	for _, p := range set.Problems {
		if p.Severity == SeverityError {
			first = p.String()
			break
		}
	}
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if len(set.Indicators) == 0 {
		return fmt.Errorf("%w: every entry of the new set is invalid (%d); the last good set stays in force; first problem: %s (run `netward indicators validate` on the source for all)",
			ErrInvalidEntries, set.Rejected, first)
	}
	if held > 0 && set.Rejected*100 > s.cfg.MaxDropPercent*held {
		return fmt.Errorf("%w: %d entries of the new set are invalid, more than indicators.maxDropPercent (%d%%) of the %d indicators in force; the last good set stays in force; first problem: %s (run `netward indicators validate` on the source for all)",
			ErrInvalidEntries, set.Rejected, s.cfg.MaxDropPercent, held, first)
	}
	return nil
}

// Run follows the source until ctx ends, then returns nil. Failures are
// logged and retried; they never end Run, and the last good set stays.
func (s *Sync) Run(ctx context.Context) error {
	k, path, _ := sourceKind(s.cfg.Source)
	switch k {
	case kindBuiltin:
		if sha256.Sum256(demoFeed) != s.currentSum() {
			if err := s.accept(demoFeed, "", ""); err != nil {
				return fmt.Errorf("the built-in demo set does not load: %w", err) // a build defect
			}
		}
		s.checked() // the source (the binary itself) has answered
		<-ctx.Done()
		return nil
	case kindFile:
		return s.runFile(ctx, path)
	}
	return s.runHTTP(ctx)
}

// Reload reads the source once now, without waiting for a change (the
// running long poll or file watch goes on): `netward reload` after fixing
// a feed or editing a file by hand. It returns why the source could not be
// read or its set was rejected; the last good set stays in force then.
func (s *Sync) Reload(ctx context.Context) error {
	k, path, err := sourceKind(s.cfg.Source)
	if err != nil {
		return err
	}
	switch k {
	case kindBuiltin:
		return s.accept(demoFeed, "", "")
	case kindFile:
		err = s.loadFile(path)
	default:
		_, err = s.fetch(ctx, 0)
	}
	if err != nil {
		s.fail(err)
	}
	return err
}

func (s *Sync) currentSum() [sha256.Size]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum
}

// backoff is the delay before retry number n (1-based): exponential from
// MinBackoff, capped at MaxBackoff, with "equal jitter" (half fixed, half
// random) so a fleet that lost its console does not return in lockstep.
func (s *Sync) backoff(n int) time.Duration {
	d := s.cfg.MinBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Sync) runHTTP(ctx context.Context) error {
	defer s.client.CloseIdleConnections() // no keep-alive outlives Run
	failures := 0
	for ctx.Err() == nil {
		start := time.Now()
		changed, err := s.fetch(ctx, s.cfg.LongPoll)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			s.fail(err)
			d := s.backoff(failures)
			s.log.Warn("indicator feed fetch failed; the last good set stays in force", "source", s.cfg.Source,
				"err", err, "failures", failures, "retryIn", d.Round(time.Millisecond))
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		if failures > 0 {
			s.log.Info("indicator feed reachable again", "source", s.cfg.Source, "afterFailures", failures)
		}
		failures = 0
		// An unchanged answer within a second means the server does not hold
		// long polls: poll once per LongPoll instead of spinning. A server
		// that holds requests for less than asked (its own cap) is still
		// long-polled back to back, so its changes arrive at once.
		if took := time.Since(start); !changed && took < time.Second {
			if !sleep(ctx, s.cfg.LongPoll-took) {
				return nil
			}
		}
	}
	return nil
}

// fetch makes one (long-poll) request. changed reports a new set applied.
func (s *Sync) fetch(ctx context.Context, wait time.Duration) (changed bool, err error) {
	u, err := url.Parse(s.cfg.Source)
	if err != nil {
		return false, err
	}
	q := u.Query()
	q.Set("wait", strconv.Itoa(int(wait/time.Second)))
	u.RawQuery = q.Encode()
	// The server answers at the latest after the wait; a request still open
	// well past it is stuck (a dead peer behind a NAT) and is abandoned.
	rctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err
	}
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	}
	cur := s.version()
	if cur != "" {
		req.Header.Set("If-None-Match", strconv.Quote(cur))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set(AgentHeader, s.agentInfo().String())
	resp, err := s.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		s.refresh(resp.Header.Get(FreshnessHeader), cur)
		s.checked()
		return false, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, fmt.Errorf("feed refused the device token (HTTP %d); check indicators.tokenFile", resp.StatusCode)
	default:
		return false, fmt.Errorf("feed answered HTTP %d %s", resp.StatusCode, snippet(resp.Body))
	}
	if resp.ContentLength > s.cfg.MaxBody {
		return false, fmt.Errorf("%w: Content-Length %d > %d bytes", ErrTooLarge, resp.ContentLength, s.cfg.MaxBody)
	}
	sig := resp.Header.Get(SignatureHeader)
	if s.cfg.PublicKey != nil && sig == "" {
		// Refused on the header alone: an unsigned body can never be
		// applied, so reading (and holding) up to MaxBody of it would only
		// let whoever answers in the console's place spend our memory.
		return false, fmt.Errorf("%w: the answer has no %s header (its body was not read)", ErrSignature, SignatureHeader)
	}
	body, err := readBody(resp.Body, resp.ContentLength, s.cfg.MaxBody)
	if err != nil {
		return false, err
	}
	if s.cfg.PublicKey != nil {
		if err := Verify(s.cfg.PublicKey, body, sig); err != nil {
			releaseBody(body)
			return false, fmt.Errorf("%w: %v", ErrSignature, err)
		}
	}
	if sha256.Sum256(body) == s.currentSum() {
		// A server ignoring If-None-Match: the same set again, and maybe
		// a newer proof that it is still current.
		s.refresh(resp.Header.Get(FreshnessHeader), s.version())
		s.checked()
		return false, nil
	}
	if err := s.accept(body, sig, resp.Header.Get(FreshnessHeader)); err != nil {
		return false, err
	}
	return true, nil
}

// envProxy reads the proxy variables now, when the client is built (not
// once per process as http.ProxyFromEnvironment does), so a restarted sync
// sees the environment it starts with.
func envProxy() func(*http.Request) (*url.URL, error) {
	pf := httpproxy.FromEnvironment().ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return pf(r.URL) }
}

// readBody reads a feed body of at most limit bytes. A known length is
// allocated once: io.ReadAll's doubling would hold up to twice the body.
func readBody(r io.Reader, length, limit int64) ([]byte, error) {
	var body []byte
	var err error
	if length >= 0 {
		body = make([]byte, length)
		var n int
		n, err = io.ReadFull(r, body)
		body = body[:n]
		if err == nil {
			// Nothing may follow the announced length.
			var one [1]byte
			if m, _ := r.Read(one[:]); m > 0 {
				err = errors.New("body longer than its Content-Length")
			}
		}
	} else {
		body, err = io.ReadAll(io.LimitReader(r, limit+1))
	}
	if err != nil {
		releaseBody(body)
		return nil, fmt.Errorf("read feed body: %w", err)
	}
	if int64(len(body)) > limit {
		releaseBody(body)
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return body, nil
}

// releaseBody returns a large refused body's memory to the OS at once
// instead of keeping the heap at its peak until the next GC cycles.
func releaseBody(b []byte) {
	if cap(b) >= 16<<20 {
		b = nil
		debug.FreeOSMemory()
	}
}

// snippet is the start of an error body, for the log.
func snippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 200))
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
}

// feedClient is the default HTTP client for a feed: sockets run control,
// and names resolve through feedResolver.
func feedClient(control func(string, string, syscall.RawConn) error, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second, Control: control, Resolver: feedResolver(control)}
	return &http.Client{Transport: &http.Transport{
		// The standard proxy variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY),
		// as the telemetry uploader: a network that only lets a proxy out
		// must reach the feed too. Without them the feed is dialed directly.
		Proxy:               envProxy(),
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 15 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        2,
		IdleConnTimeout:     90 * time.Second,
	}}
}
