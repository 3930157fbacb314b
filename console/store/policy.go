package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// CustomApp is an app an admin added to the catalog.
type CustomApp struct {
	ID        int64     `json:"-"`
	Name      string    `json:"name"`
	Category  string    `json:"category,omitempty"`
	Domains   []string  `json:"domains"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateCustomApp adds an app; ErrExists when the name is taken.
func (s *Store) CreateCustomApp(ctx context.Context, a CustomApp) (CustomApp, error) {
	doms, _ := json.Marshal(a.Domains)
	a.CreatedAt = fromMS(ms(s.now()))
	err := s.w.QueryRowContext(ctx, s.q("INSERT INTO custom_apps (name, category, domains, created_by, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id"),
		a.Name, a.Category, string(doms), a.CreatedBy, ms(a.CreatedAt)).Scan(&a.ID)
	if isUnique(err) {
		return a, fmt.Errorf("custom app %q: %w", a.Name, ErrExists)
	}
	return a, err
}

// CustomAppsVersion changes whenever a custom app is created or deleted
// (their count and the highest id: ids are never reused). Replicas poll it
// to rebuild their app matcher (there is no notification for apps).
func (s *Store) CustomAppsVersion(ctx context.Context) (string, error) {
	var n, top int64
	if err := s.queryRow(ctx, "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM custom_apps").Scan(&n, &top); err != nil {
		return "", fmt.Errorf("store: custom apps: %w", err)
	}
	return fmt.Sprintf("%d/%d", n, top), nil
}

// CustomApps lists custom apps in creation order.
func (s *Store) CustomApps(ctx context.Context) ([]CustomApp, error) {
	return queryAll(ctx, s, func(sc scanner) (CustomApp, error) {
		var a CustomApp
		var doms string
		var c int64
		if err := sc.Scan(&a.ID, &a.Name, &a.Category, &doms, &a.CreatedBy, &c); err != nil {
			return a, err
		}
		a.CreatedAt = fromMS(c)
		if err := json.Unmarshal([]byte(doms), &a.Domains); err != nil {
			return a, fmt.Errorf("custom app %q: domains: %w", a.Name, err)
		}
		return a, nil
	}, "SELECT id, name, category, domains, created_by, created_at FROM custom_apps ORDER BY id")
}

// DeleteCustomApp removes a custom app and its tag.
func (s *Store) DeleteCustomApp(ctx context.Context, id int64, appID string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, s.q("DELETE FROM custom_apps WHERE id = ?"), id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("custom app %s: %w", appID, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, s.q("DELETE FROM app_tags WHERE app_id = ?"), appID)
		return err
	})
}

// Tag is an app's tag.
type Tag struct {
	AppID     string    `json:"appId"`
	Tag       string    `json:"tag"`
	UpdatedBy string    `json:"updatedBy"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Tags returns every tag by app id.
func (s *Store) Tags(ctx context.Context) (map[string]Tag, error) {
	list, err := queryAll(ctx, s, func(sc scanner) (Tag, error) {
		var t Tag
		var u int64
		err := sc.Scan(&t.AppID, &t.Tag, &t.UpdatedBy, &u)
		t.UpdatedAt = fromMS(u)
		return t, err
	}, "SELECT app_id, tag, updated_by, updated_at FROM app_tags")
	out := make(map[string]Tag, len(list))
	for _, t := range list {
		out[t.AppID] = t
	}
	return out, err
}

// SetTag tags an app; an empty tag clears it.
func (s *Store) SetTag(ctx context.Context, appID, tag, by string) error {
	if tag == "" {
		_, err := s.exec(ctx, "DELETE FROM app_tags WHERE app_id = ?", appID)
		return err
	}
	_, err := s.exec(ctx, "INSERT INTO app_tags (app_id, tag, updated_by, updated_at) VALUES (?, ?, ?, ?) "+
		"ON CONFLICT (app_id) DO UPDATE SET tag = excluded.tag, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
		appID, tag, by, ms(s.now()))
	return err
}

// Indicator is a custom indicator, in MDE terms.
type Indicator struct {
	ID             int64     `json:"id"`
	Type           string    `json:"indicatorType"`
	Value          string    `json:"indicatorValue"`
	Action         string    `json:"action"`
	Title          string    `json:"title,omitempty"`
	Description    string    `json:"description,omitempty"`
	Application    string    `json:"application,omitempty"`
	ApplicationID  string    `json:"applicationId,omitempty"`
	ExpirationTime time.Time `json:"expirationTime,omitzero"`
	BypassHours    float64   `json:"bypassDurationHours,omitempty"`
	CreatedBy      string    `json:"createdBy"`
	CreatedAt      time.Time `json:"creationTime"`
	UpdatedAt      time.Time `json:"lastUpdateTime"`
}

const indicatorCols = "id, indicator_type, indicator_value, action, title, description, application, application_id, expires_at, bypass_hours, created_by, created_at, updated_at"

func scanIndicator(sc scanner) (Indicator, error) {
	var in Indicator
	var e, c, u int64
	err := sc.Scan(&in.ID, &in.Type, &in.Value, &in.Action, &in.Title, &in.Description, &in.Application, &in.ApplicationID, &e, &in.BypassHours, &in.CreatedBy, &c, &u)
	in.ExpirationTime, in.CreatedAt, in.UpdatedAt = fromMS(e), fromMS(c), fromMS(u)
	return in, err
}

// UpsertIndicators adds indicators, or updates the one with the same type
// and value (the MDE API's submit-or-update), in one transaction. It
// returns the stored rows in input order and how many were new.
func (s *Store) UpsertIndicators(ctx context.Context, list []Indicator, by string) ([]Indicator, int, error) {
	now := ms(s.now())
	out := make([]Indicator, 0, len(list))
	created := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out, created = out[:0], 0
		for _, in := range list {
			var id int64
			err := tx.QueryRowContext(ctx, s.q("SELECT id FROM indicators WHERE indicator_type = ? AND indicator_value = ?"), in.Type, in.Value).Scan(&id)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				err = tx.QueryRowContext(ctx, s.q("INSERT INTO indicators (indicator_type, indicator_value, action, title, description, application, application_id, expires_at, bypass_hours, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
					in.Type, in.Value, in.Action, in.Title, in.Description, in.Application, in.ApplicationID, ms(in.ExpirationTime), in.BypassHours, by, now, now).Scan(&id)
				created++
			case err == nil:
				_, err = tx.ExecContext(ctx, s.q("UPDATE indicators SET action = ?, title = ?, description = ?, application = ?, application_id = ?, expires_at = ?, bypass_hours = ?, updated_at = ? WHERE id = ?"),
					in.Action, in.Title, in.Description, in.Application, in.ApplicationID, ms(in.ExpirationTime), in.BypassHours, now, id)
			}
			if err != nil {
				return fmt.Errorf("store: indicator %s %q: %w", in.Type, in.Value, err)
			}
			got, err := scanIndicator(tx.QueryRowContext(ctx, s.q("SELECT "+indicatorCols+" FROM indicators WHERE id = ?"), id))
			if err != nil {
				return err
			}
			out = append(out, got)
		}
		return nil
	})
	return out, created, err
}

// Indicators lists custom indicators by id.
func (s *Store) Indicators(ctx context.Context) ([]Indicator, error) {
	return queryAll(ctx, s, scanIndicator, "SELECT "+indicatorCols+" FROM indicators ORDER BY id")
}

// Indicator finds one by id.
func (s *Store) Indicator(ctx context.Context, id int64) (Indicator, error) {
	in, err := scanIndicator(s.queryRow(ctx, "SELECT "+indicatorCols+" FROM indicators WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return in, fmt.Errorf("indicator %d: %w", id, ErrNotFound)
	}
	return in, err
}

// DeleteIndicator removes one.
func (s *Store) DeleteIndicator(ctx context.Context, id int64) error {
	return s.execOne(ctx, fmt.Sprintf("indicator %d", id), "DELETE FROM indicators WHERE id = ?", id)
}

// Setting reads a named setting (a JSON document); ok is false when unset.
func (s *Store) Setting(ctx context.Context, name string) (value string, ok bool, err error) {
	err = s.queryRow(ctx, "SELECT value FROM settings WHERE name = ?", name).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return value, err == nil, err
}

// SetSetting stores a named setting.
func (s *Store) SetSetting(ctx context.Context, name, value, by string) error {
	_, err := s.exec(ctx, "INSERT INTO settings (name, value, updated_by, updated_at) VALUES (?, ?, ?, ?) "+
		"ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
		name, value, by, ms(s.now()))
	return err
}

// Secret returns the named secret, creating it with gen the first time.
// Concurrent starters (replicas) agree on one value: the first insert wins.
func (s *Store) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := s.queryRow(ctx, "SELECT value FROM secrets WHERE name = ?", name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	nv, err := gen()
	if err != nil {
		return nil, err
	}
	if _, err := s.exec(ctx, "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING", name, nv, ms(s.now())); err != nil {
		return nil, err
	}
	err = s.w.QueryRowContext(ctx, s.q("SELECT value FROM secrets WHERE name = ?"), name).Scan(&v)
	return v, err
}

// FeedDocument is one signed-ready feed body per sequence.
type FeedDocument struct {
	Sequence    int64
	Version     string
	GeneratedAt time.Time
	Indicators  int
	Body        []byte
}

// LatestFeed returns the document with the highest sequence; ErrNotFound
// when none was made yet.
func (s *Store) LatestFeed(ctx context.Context) (FeedDocument, error) {
	var d FeedDocument
	var g int64
	err := s.queryRow(ctx, "SELECT sequence, version, generated_at, indicators, body FROM feed_documents ORDER BY sequence DESC LIMIT 1").
		Scan(&d.Sequence, &d.Version, &g, &d.Indicators, &d.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return d, ErrNotFound
	}
	d.GeneratedAt = fromMS(g)
	return d, err
}

// LatestFeedSequence is the highest sequence (0: none), a cheap poll.
func (s *Store) LatestFeedSequence(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	err := s.queryRow(ctx, "SELECT MAX(sequence) FROM feed_documents").Scan(&n)
	return n.Int64, err
}

// keepFeedDocuments is how many old sequences stay for inspection.
const keepFeedDocuments = 50

// FeedBuild is the feed content PublishFeed publishes: its version (the
// content digest), indicator count, and body for a (sequence, generatedAt).
type FeedBuild struct {
	Version    string
	Indicators int
	Body       func(seq int64, at time.Time) ([]byte, error)
}

// maxSequenceJump bounds how far a device's reported sequence may lift the
// console's: a restored backup is a few hundred changes behind, not a
// million; a hostile device token reporting 2^62 is ignored (and logged).
const maxSequenceJump = 1_000_000

// feedLock is the PostgreSQL advisory lock that serialises publishing
// across replicas.
const feedLock = 7236842

// PublishFeed builds the feed and makes it the next sequence unless the
// latest document already has its version. One publisher at a time, on
// every replica (PostgreSQL: a transaction-scoped advisory lock; SQLite:
// the write transaction), and build runs *inside* that section: a content
// built from a store read before another replica's change committed can
// never be published after that replica's document (the lost update of a
// build-then-publish race). The body is made and stored in the same
// transaction, so a sequence always signs to the same bytes.
//
// The next sequence continues above both the latest document and the
// highest sequence an active device reported in its check-in (a console
// restored from a backup, whose devices hold more than it published;
// docs/feed.md): then even unchanged content is published again, above.
func (s *Store) PublishFeed(ctx context.Context, build func(context.Context) (FeedBuild, error)) (FeedDocument, bool, error) {
	for attempt := 0; ; attempt++ {
		var doc FeedDocument
		made := false
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if s.dialect == Postgres {
				if _, err := tx.ExecContext(ctx, s.q("SELECT pg_advisory_xact_lock(?)"), feedLock); err != nil {
					return fmt.Errorf("feed lock: %w", err)
				}
			}
			var seq int64
			var ver string
			var g int64
			err := tx.QueryRowContext(ctx, "SELECT sequence, version, generated_at FROM feed_documents ORDER BY sequence DESC LIMIT 1").Scan(&seq, &ver, &g)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			floor, err := s.devicesAhead(ctx, tx, seq)
			if err != nil {
				return err
			}
			fb, err := build(ctx)
			if err != nil {
				return err
			}
			if ver == fb.Version && seq >= floor {
				doc = FeedDocument{Sequence: seq, Version: ver, GeneratedAt: fromMS(g)}
				return tx.QueryRowContext(ctx, s.q("SELECT indicators, body FROM feed_documents WHERE sequence = ?"), seq).Scan(&doc.Indicators, &doc.Body)
			}
			next := max(seq, floor) + 1
			if floor > seq {
				s.log.Warn("feed: devices hold a higher sequence than the console published (restored from a backup?); continuing above it",
					"published", seq, "devicesHold", floor, "next", next)
			}
			at := s.now().UTC().Truncate(time.Second)
			body, err := fb.Body(next, at)
			if err != nil {
				return err
			}
			doc = FeedDocument{Sequence: next, Version: fb.Version, GeneratedAt: at, Indicators: fb.Indicators, Body: body}
			if _, err := tx.ExecContext(ctx, s.q("INSERT INTO feed_documents (sequence, version, generated_at, indicators, body) VALUES (?, ?, ?, ?, ?)"),
				doc.Sequence, fb.Version, ms(at), fb.Indicators, body); err != nil {
				return err
			}
			made = true
			if s.dialect == Postgres {
				// Delivered to every replica's WatchFeed when this commits.
				if _, err := tx.ExecContext(ctx, s.q("SELECT pg_notify('"+feedChannel+"', ?)"), strconv.FormatInt(doc.Sequence, 10)); err != nil {
					return fmt.Errorf("feed notify: %w", err)
				}
			}
			_, err = tx.ExecContext(ctx, s.q("DELETE FROM feed_documents WHERE sequence <= ?"), doc.Sequence-keepFeedDocuments)
			return err
		})
		if isUnique(err) && attempt < 5 {
			continue // another replica took this sequence; look again
		}
		return doc, made, err
	}
}

// devicesAhead is the highest sequence an active device reported, when it
// is above published (0 otherwise); reports beyond maxSequenceJump are
// ignored and logged.
func (s *Store) devicesAhead(ctx context.Context, tx *sql.Tx, published int64) (int64, error) {
	var held sql.NullInt64
	err := tx.QueryRowContext(ctx, s.q("SELECT MAX(sequence_held) FROM devices WHERE revoked_at = 0 AND checkin_known = 1 AND sequence_held > ? AND sequence_held <= ?"),
		published, published+maxSequenceJump).Scan(&held)
	if err != nil {
		return 0, fmt.Errorf("devices' sequences: %w", err)
	}
	var wild sql.NullString
	if err := tx.QueryRowContext(ctx, s.q("SELECT MIN(id) FROM devices WHERE revoked_at = 0 AND checkin_known = 1 AND sequence_held > ?"), published+maxSequenceJump).Scan(&wild); err == nil && wild.Valid {
		s.log.Warn("feed: a device reports a sequence far above the console's; ignored (a hostile or broken agent?)", "device", wild.String, "published", published)
	}
	return held.Int64, nil
}

// RotateSecret replaces a named secret (the feed signing key).
func (s *Store) RotateSecret(ctx context.Context, name string, value []byte) error {
	_, err := s.exec(ctx, "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
		name, value, ms(s.now()))
	return err
}

// AuditEntry is one admin action.
type AuditEntry struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Detail string    `json:"detail,omitempty"`
}

// Audit records an admin action.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	_, err := s.exec(ctx, "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)", ms(e.At), e.Actor, e.Action, e.Target, e.Detail)
	return err
}

// AuditLog returns the newest entries first.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	return queryAll(ctx, s, func(sc scanner) (AuditEntry, error) {
		var e AuditEntry
		var at int64
		err := sc.Scan(&at, &e.Actor, &e.Action, &e.Target, &e.Detail)
		e.At = fromMS(at)
		return e, err
	}, "SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?", limit)
}
