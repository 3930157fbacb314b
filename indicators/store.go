package indicators

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Record is the last good indicator set as it came from its source: the raw
// bytes (so the signature can be checked again and nothing is lost in a
// re-encoding), the version, the signature header and when it was fetched.
type Record struct {
	Body      []byte
	Version   string
	Signature string
	Source    string
	FetchedAt time.Time
	// State is the feed state saved with the set, in the same transaction.
	State FeedState
}

// FeedState is what the sync keeps across restarts besides the set itself:
// the rollback floor and the freshness of the set held (CONTRACT §5).
type FeedState struct {
	// KeyID names what the floor belongs to: the feed's public key
	// ("ed25519:<hex of its SHA-256>") or, for an unsigned feed, its source
	// URL. A different one resets the floor.
	KeyID string
	// Seq is the highest sequence accepted under KeyID, Version the set
	// version at that sequence.
	Seq     uint64
	Version string
	// FreshAt is the latest time the console vouched that the set held is
	// its current one (a verified Netward-Freshness, or the set's
	// generatedAt); zero for sources the rules exempt.
	FreshAt time.Time
}

// StoreConfig configures OpenStore.
type StoreConfig struct {
	Path string // the bbolt file, e.g. <dataDir>/indicators.db
	Log  *slog.Logger
	Now  func() time.Time
}

// Store keeps the last good indicator set in a bbolt database. Every Save is
// one bbolt transaction, so a crash mid-write leaves the previous set intact.
type Store struct {
	db  *bolt.DB
	log *slog.Logger
}

var (
	bucketFeedState = []byte("feedstate")
	keyState        = []byte("state")
	bucketLastGood  = []byte("lastgood")
	keyBody         = []byte("body")
	keySum          = []byte("sha256")
	keyVersion      = []byte("version")
	keySignature    = []byte("signature")
	keySource       = []byte("source")
	keyFetchedAt    = []byte("fetchedAt")
)

// OpenStore opens (or creates) the store. A database that bbolt cannot open
// or that fails its consistency check is moved aside to
// "<path>.corrupt-<time>" with an error log line, and an empty store is
// created in its place: the agent then runs on what it can fetch and never
// crash-loops on a bad file.
func OpenStore(cfg StoreConfig) (*Store, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("indicator store: %w (check dataDir)", err)
	}
	db, err := openChecked(cfg.Path)
	if err == nil {
		return &Store{db: db, log: log}, nil
	}
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("indicator store %s is locked: %w (is another netward running with the same dataDir?)", cfg.Path, err)
	}
	aside := fmt.Sprintf("%s.corrupt-%s", cfg.Path, now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(cfg.Path, aside); rerr != nil {
		return nil, fmt.Errorf("indicator store %s is unreadable (%v) and cannot be moved aside: %w; remove it by hand", cfg.Path, err, rerr)
	}
	log.Error("indicator store was corrupt and has been moved aside; starting without a stored set, the feed will refill it",
		"path", cfg.Path, "movedTo", aside, "err", err)
	db, err = openChecked(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("indicator store %s: %w", cfg.Path, err)
	}
	return &Store{db: db, log: log}, nil
}

// openChecked opens path and runs bbolt's consistency check. bbolt may panic
// on some corrupt pages; that is turned into an error.
func openChecked(path string) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
				db = nil
			}
			err = fmt.Errorf("corrupt database: %v", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	err = db.View(func(tx *bolt.Tx) error {
		var first error
		for cerr := range tx.Check() { // drain: Check's goroutine reads the tx
			if first == nil {
				first = cerr
			}
		}
		if first != nil {
			return first
		}
		if b := tx.Bucket(bucketLastGood); b != nil {
			if body := b.Get(keyBody); body != nil {
				sum := sha256.Sum256(body)
				if !bytes.Equal(sum[:], b.Get(keySum)) {
					return errors.New("stored indicator set does not match its checksum")
				}
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Save replaces the stored set in a single transaction: readers see either
// the old set or the new one, also after a crash or power loss.
func (s *Store) Save(r Record) error {
	sum := sha256.Sum256(r.Body)
	at, _ := r.FetchedAt.UTC().MarshalText()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLastGood)
		if err != nil {
			return err
		}
		for _, kv := range []struct{ k, v []byte }{
			{keyBody, r.Body}, {keySum, sum[:]}, {keyVersion, []byte(r.Version)},
			{keySignature, []byte(r.Signature)}, {keySource, []byte(r.Source)}, {keyFetchedAt, at},
		} {
			if err := b.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		return putState(tx, r.State)
	})
	if err != nil {
		return fmt.Errorf("save indicator set %s: %w (check free space in dataDir)", r.Version, err)
	}
	return nil
}

// SaveState replaces the stored feed state alone (a freshness proof on a
// 304 raises it without a new set).
func (s *Store) SaveState(st FeedState) error {
	if err := s.db.Update(func(tx *bolt.Tx) error { return putState(tx, st) }); err != nil {
		return fmt.Errorf("save the feed state: %w (check free space in dataDir)", err)
	}
	return nil
}

func putState(tx *bolt.Tx, st FeedState) error {
	b, err := tx.CreateBucketIfNotExists(bucketFeedState)
	if err != nil {
		return err
	}
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return b.Put(keyState, v)
}

// LoadState returns the stored feed state (zero when there is none; a
// state that does not decode is reported and read as zero: the floor
// starts again, it never blocks a start).
func (s *Store) LoadState() (FeedState, error) {
	var st FeedState
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFeedState)
		if b == nil {
			return nil
		}
		v := b.Get(keyState)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &st); err != nil {
			st = FeedState{}
			return fmt.Errorf("stored feed state is unreadable: %w", err)
		}
		return nil
	})
	return st, err
}

// Load returns the stored set; ok is false when there is none.
func (s *Store) Load() (r Record, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLastGood)
		if b == nil {
			return nil
		}
		body := b.Get(keyBody)
		if body == nil {
			return nil
		}
		sum := sha256.Sum256(body)
		if !bytes.Equal(sum[:], b.Get(keySum)) {
			return errors.New("stored indicator set does not match its checksum")
		}
		ok = true
		r.Body = bytes.Clone(body) // bbolt memory is valid only inside the tx
		r.Version = string(b.Get(keyVersion))
		r.Signature = string(b.Get(keySignature))
		r.Source = string(b.Get(keySource))
		_ = r.FetchedAt.UnmarshalText(b.Get(keyFetchedAt))
		return nil
	})
	if err == nil {
		var serr error
		if r.State, serr = s.LoadState(); serr != nil {
			s.log.Warn("feed state not read; the rollback floor starts again from the next set", "err", serr)
		}
	}
	return r, ok, err
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
