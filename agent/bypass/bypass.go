// Package bypass is the durable store of Warn bypasses (CONTRACT §2).
//
// A bypass is keyed by (user, target): user is the account that continued
// past the warning, or "" for the whole device when the route that created it
// knows no user; target is the application of the matched indicator when it
// has one ("a bypass of an application covers every domain of that
// application", CONTRACT §1), else the matched indicator's value.
//
// Writes go to a bbolt file and are committed (fsync) before Put returns, so a
// user is never told "continue" for a bypass that a crash would forget. Reads
// on the interceptors' hot path use an immutable in-memory snapshot behind an
// atomic pointer: no lock and no allocation per lookup.
package bypass

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/netward/netward/filter"
)

// How values: which route created a bypass.
const (
	HowPage = "page" // the Continue button of the warn page
	HowCLI  = "cli"  // netward bypass NAME
)

// Errors callers branch on with errors.Is.
var (
	// ErrBlock: the name is blocked; a Block can never be bypassed (CONTRACT §2).
	ErrBlock = errors.New("the name is blocked, and a block cannot be bypassed")
	// ErrNotWarned: nothing to continue past (no Warn indicator matches).
	ErrNotWarned = errors.New("no Warn indicator matches the name, so there is nothing to bypass")
	// ErrFull: the store holds MaxEntries active bypasses.
	ErrFull = errors.New("the bypass store is full; revoke bypasses with 'netward bypass --revoke NAME' or wait for them to expire")
)

// Entry is one bypass. The JSON names are the stable `--json` field names of
// `netward bypass --list`.
type Entry struct {
	// User is the account that continued, "" for the whole device.
	User string `json:"user"`
	// Application is set when the bypass covers a whole application.
	Application string `json:"application,omitempty"`
	// Indicator is the matched indicator value (type IndicatorType) when the
	// indicator has no application.
	Indicator     string `json:"indicator,omitempty"`
	IndicatorType string `json:"indicatorType,omitempty"`
	IndicatorID   string `json:"indicatorId,omitempty"`
	// Name is the name the user asked for when continuing.
	Name    string    `json:"name"`
	Created time.Time `json:"createdAt"`
	Expires time.Time `json:"expiresAt"`
	// Who created it: the user name, or "device" when unknown.
	Who string `json:"who"`
	// How: HowPage or HowCLI.
	How string `json:"how"`
}

// Target is what the entry's key names: "app:NAME" or "TYPE:VALUE".
func (e Entry) Target() string {
	if e.Application != "" {
		return "app:" + e.Application
	}
	return e.IndicatorType + ":" + e.Indicator
}

// TargetOf is the Target of a bypass of the indicator r: its application
// when it has one, else its value (CONTRACT §2).
func TargetOf(r *filter.Rule) string {
	if r.Application() != "" {
		return "app:" + r.Application()
	}
	return r.Type.String() + ":" + r.Value
}

func (e Entry) key() []byte { return []byte(e.User + "\x00" + e.Target()) }

// NewEntry builds the entry a user continuing past the Warn match m creates at
// now. Application wins over the indicator value (CONTRACT §2). Times are
// truncated to the second: expiry is exact to the second.
func NewEntry(m filter.Match, name, user, how string, now time.Time, d time.Duration) (Entry, error) {
	if m.Rule == nil || m.Action != filter.Warn {
		if m.Action == filter.Block {
			return Entry{}, ErrBlock
		}
		return Entry{}, ErrNotWarned
	}
	if d <= 0 {
		return Entry{}, fmt.Errorf("bypass duration %v is not positive", d)
	}
	created := now.UTC().Truncate(time.Second)
	// A fractional duration (bypassDurationHours 0.0001 is 0.36 s) would
	// leave a sub-second expiry: cut it to the second too, keeping at least
	// one second so the bypass exists at all.
	expires := created.Add(d).Truncate(time.Second)
	if !expires.After(created) {
		expires = created.Add(time.Second)
	}
	e := Entry{User: user, Name: name, Created: created, Expires: expires, Who: user, How: how,
		IndicatorID: m.Rule.IndicatorID()}
	if e.Who == "" {
		e.Who = "device"
	}
	if m.Rule.Application() != "" {
		e.Application = m.Rule.Application()
	} else {
		e.Indicator, e.IndicatorType = m.Rule.Value, m.Rule.Type.String()
	}
	return e, nil
}

// Config configures a Store.
type Config struct {
	// Path of the bbolt file; its directory is created 0700.
	Path string
	// MaxEntries bounds the store (default 10000); Put past it returns ErrFull.
	MaxEntries int
	// OnChange, if set, is called after every change of the entries (a
	// bypass added, replaced, removed or purged), so that what is computed
	// from them follows at once. It must not call back into the Store.
	OnChange func()
	Log      *slog.Logger
}

// Store is the bypass store. Its methods are safe for concurrent use.
type Store struct {
	db       *bolt.DB
	max      int
	onChange func()
	log      *slog.Logger
	mu       sync.Mutex // serialises writers; readers never take it
	snap     atomic.Pointer[snapshot]
}

var bucket = []byte("bypass.v1")

// indKey identifies an indicator without a string concatenation, so the hot
// path lookup does not allocate.
type indKey struct {
	typ   filter.Type
	value string
}

// target is every bypass of one target, by user.
type target struct {
	users  map[string]time.Time // user ("" = device) -> expiry
	latest time.Time            // max over users: the answer for "any user"
}

type snapshot struct {
	apps    map[string]*target
	inds    map[indKey]*target
	entries []Entry
}

// Open opens (creating if needed) the store at cfg.Path, loads every entry
// into the snapshot and drops the ones expired at now.
func Open(cfg Config, now time.Time) (*Store, error) {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 10000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("bypass store: create data directory: %w", err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bypass store %s: %w (is another netward running with the same dataDir?)", cfg.Path, err)
	}
	s := &Store{db: db, max: cfg.MaxEntries, onChange: cfg.OnChange, log: cfg.Log}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("bypass store %s: %w", cfg.Path, err)
	}
	if _, err := s.Purge(now); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the file. The snapshot stays readable.
func (s *Store) Close() error { return s.db.Close() }

// Active reports whether a bypass covers the Warn match m for user at now and
// until when. user "" means "any user of the device": DNS answers are
// host-wide and carry no user, so the DNS path must count a bypass by anyone.
// A device-wide bypass (User "") covers every user. Callers pass the current
// match, so a bypass whose indicator became Block or disappeared no longer
// applies. Lock-free and allocation-free.
func (s *Store) Active(m filter.Match, user string, now time.Time) (time.Time, bool) {
	if m.Action != filter.Warn || m.Rule == nil {
		return time.Time{}, false // never for a Block, by any route
	}
	sn := s.snap.Load()
	if sn == nil {
		return time.Time{}, false
	}
	var t *target
	if m.Rule.Application() != "" {
		t = sn.apps[m.Rule.Application()]
	} else {
		t = sn.inds[indKey{m.Rule.Type, m.Rule.Value}]
	}
	if t == nil {
		return time.Time{}, false
	}
	var exp time.Time
	if user == "" {
		exp = t.latest
	} else {
		exp = t.users[user]
		if d := t.users[""]; d.After(exp) {
			exp = d
		}
	}
	if now.Before(exp) {
		return exp, true
	}
	return time.Time{}, false
}

// Put stores e durably (the bbolt transaction is committed to disk before Put
// returns) and then publishes it to readers. An entry for the same user and
// target is replaced.
func (s *Store) Put(e Entry) error {
	if !e.Expires.After(e.Created) {
		return fmt.Errorf("bypass for %s: expiry %v is not after creation %v", e.Name, e.Expires, e.Created)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.entries()
	exists := false
	for _, o := range cur {
		if string(o.key()) == string(e.key()) {
			exists = true
			break
		}
	}
	if !exists && len(cur) >= s.max {
		return ErrFull
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(e.key(), b) }); err != nil {
		return fmt.Errorf("save bypass: %w (check free space and permissions of the data directory)", err)
	}
	next := make([]Entry, 0, len(cur)+1)
	for _, o := range cur {
		if string(o.key()) != string(e.key()) {
			next = append(next, o)
		}
	}
	s.publish(append(next, e))
	return nil
}

// Remove deletes every entry for which match returns true and reports how
// many it removed.
func (s *Store) Remove(match func(Entry) bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(match)
}

func (s *Store) removeLocked(match func(Entry) bool) (int, error) {
	cur := s.entries()
	var keep, drop []Entry
	for _, e := range cur {
		if match(e) {
			drop = append(drop, e)
		} else {
			keep = append(keep, e)
		}
	}
	if len(drop) == 0 && s.snap.Load() != nil {
		return 0, nil
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		for _, e := range drop {
			if err := bk.Delete(e.key()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("remove bypasses: %w", err)
	}
	s.publish(keep)
	return len(drop), nil
}

// Purge removes the entries expired at now, from disk and memory. Lookups
// already ignore them; purging keeps the file and the list small.
func (s *Store) Purge(now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap.Load() == nil {
		if err := s.load(); err != nil {
			return 0, err
		}
	}
	return s.removeLocked(func(e Entry) bool { return !now.Before(e.Expires) })
}

// Prune removes the bypasses whose indicator is no longer a Warn in p: it
// became a Block, or left the policy (CONTRACT §2: such a bypass is
// removed). Lookups never apply them anyway, since they check the current
// match; pruning makes the removal durable, so the bypass does not come back
// if the indicator later returns to Warn.
func (s *Store) Prune(p *filter.Policy) (int, error) {
	live := map[string]bool{}
	for _, r := range p.Rules() {
		if r.Action == filter.Warn {
			live[TargetOf(&r)] = true
		}
	}
	return s.Remove(func(e Entry) bool { return !live[e.Target()] })
}

// NextExpiry is the earliest expiry in the store (zero when empty), so the
// owner can purge exactly when needed.
func (s *Store) NextExpiry() time.Time {
	var next time.Time
	for _, e := range s.entries() {
		if next.IsZero() || e.Expires.Before(next) {
			next = e.Expires
		}
	}
	return next
}

// List returns the entries active at now, soonest expiry first.
func (s *Store) List(now time.Time) []Entry {
	var out []Entry
	for _, e := range s.entries() {
		if now.Before(e.Expires) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Expires.Equal(out[j].Expires) {
			return out[i].Expires.Before(out[j].Expires)
		}
		return out[i].Target() < out[j].Target()
	})
	return out
}

// Stats counts the entries active at now per application (or, for
// indicators without one, per indicator value).
func (s *Store) Stats(now time.Time) map[string]int {
	out := map[string]int{}
	for _, e := range s.List(now) {
		k := e.Application
		if k == "" {
			k = e.Indicator
		}
		out[k]++
	}
	return out
}

func (s *Store) entries() []Entry {
	if sn := s.snap.Load(); sn != nil {
		return sn.entries
	}
	return nil
}

// load reads every entry from disk. A record that does not decode is logged
// and deleted rather than failing the agent.
func (s *Store) load() error {
	var all []Entry
	var bad [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil || string(e.key()) != string(k) {
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			all = append(all, e)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read bypass store: %w", err)
	}
	if len(bad) > 0 {
		s.log.Warn("bypass store: dropping undecodable records", "count", len(bad))
		if err := s.db.Update(func(tx *bolt.Tx) error {
			for _, k := range bad {
				if err := tx.Bucket(bucket).Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("clean bypass store: %w", err)
		}
	}
	s.publish(all)
	return nil
}

// publish builds an immutable snapshot of entries and swaps it in.
func (s *Store) publish(entries []Entry) {
	sn := &snapshot{apps: map[string]*target{}, inds: map[indKey]*target{}, entries: entries}
	for _, e := range entries {
		var t *target
		if e.Application != "" {
			t = sn.apps[e.Application]
			if t == nil {
				t = &target{users: map[string]time.Time{}}
				sn.apps[e.Application] = t
			}
		} else {
			typ, err := filter.ParseType(e.IndicatorType)
			if err != nil {
				continue
			}
			k := indKey{typ, e.Indicator}
			t = sn.inds[k]
			if t == nil {
				t = &target{users: map[string]time.Time{}}
				sn.inds[k] = t
			}
		}
		if e.Expires.After(t.users[e.User]) {
			t.users[e.User] = e.Expires
		}
		if e.Expires.After(t.latest) {
			t.latest = e.Expires
		}
	}
	s.snap.Store(sn)
	if s.onChange != nil {
		s.onChange()
	}
}

// Matches reports whether e concerns name: its application, indicator value
// or the name it was created for, compared case-insensitively. `netward bypass
// --revoke NAME` uses it.
func (e Entry) Matches(name string) bool {
	return strings.EqualFold(e.Name, name) || (e.Application != "" && strings.EqualFold(e.Application, name)) ||
		(e.Indicator != "" && strings.EqualFold(e.Indicator, name))
}
