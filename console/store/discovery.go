package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DiscoveryPolicy tags the discovered apps that match it: a category
// ("" any), a name pattern (path.Match syntax on the app's name or id, ""
// any), and minimums over the last PeriodDays.
type DiscoveryPolicy struct {
	ID              int64     `json:"id"`
	Name            string    `json:"name"`
	Category        string    `json:"category,omitempty"`
	NamePattern     string    `json:"namePattern,omitempty"`
	MinUsers        int64     `json:"minUsers,omitempty"`
	MinBytes        int64     `json:"minBytes,omitempty"`
	MinTransactions int64     `json:"minTransactions,omitempty"`
	PeriodDays      int64     `json:"periodDays"`
	Tag             string    `json:"tag"`
	Enabled         bool      `json:"enabled"`
	CreatedBy       string    `json:"createdBy"`
	CreatedAt       time.Time `json:"createdAt"`
	LastRunAt       time.Time `json:"lastRunAt,omitzero"`
}

const policyCols = "id, name, category, name_pattern, min_users, min_bytes, min_transactions, period_days, tag, enabled, created_by, created_at, last_run_at"

func scanPolicy(sc scanner) (DiscoveryPolicy, error) {
	var p DiscoveryPolicy
	var en int
	var c, l int64
	err := sc.Scan(&p.ID, &p.Name, &p.Category, &p.NamePattern, &p.MinUsers, &p.MinBytes, &p.MinTransactions, &p.PeriodDays, &p.Tag, &en, &p.CreatedBy, &c, &l)
	p.Enabled, p.CreatedAt, p.LastRunAt = en != 0, fromMS(c), fromMS(l)
	return p, err
}

// CreateDiscoveryPolicy adds a policy (ErrExists for a taken name).
func (s *Store) CreateDiscoveryPolicy(ctx context.Context, p DiscoveryPolicy) (DiscoveryPolicy, error) {
	p.CreatedAt = s.now().UTC()
	en := 0
	if p.Enabled {
		en = 1
	}
	err := s.w.QueryRowContext(ctx, s.q("INSERT INTO discovery_policies (name, category, name_pattern, min_users, min_bytes, min_transactions, period_days, tag, enabled, created_by, created_at) "+
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
		p.Name, p.Category, p.NamePattern, p.MinUsers, p.MinBytes, p.MinTransactions, p.PeriodDays, p.Tag, en, p.CreatedBy, ms(p.CreatedAt)).Scan(&p.ID)
	if isUnique(err) {
		return p, fmt.Errorf("discovery policy %q: %w", p.Name, ErrExists)
	}
	return p, err
}

// DiscoveryPolicies lists the policies.
func (s *Store) DiscoveryPolicies(ctx context.Context) ([]DiscoveryPolicy, error) {
	return queryAll(ctx, s, scanPolicy, "SELECT "+policyCols+" FROM discovery_policies ORDER BY id")
}

// DeleteDiscoveryPolicy removes a policy; the tags it set stay (revert
// them one by one).
func (s *Store) DeleteDiscoveryPolicy(ctx context.Context, id int64) error {
	return s.execOne(ctx, fmt.Sprintf("discovery policy %d", id), "DELETE FROM discovery_policies WHERE id = ?", id)
}

// PolicyRan records a policy's evaluation time.
func (s *Store) PolicyRan(ctx context.Context, id int64, at time.Time) error {
	_, err := s.exec(ctx, "UPDATE discovery_policies SET last_run_at = ? WHERE id = ?", ms(at), id)
	return err
}

// AutoTag is a tag a discovery policy set.
type AutoTag struct {
	ID          int64     `json:"id"`
	AppID       string    `json:"appId"`
	PolicyID    int64     `json:"policyId"`
	PolicyName  string    `json:"policyName"`
	Tag         string    `json:"tag"`
	PreviousTag string    `json:"previousTag"`
	Reason      string    `json:"reason"`
	AppliedAt   time.Time `json:"appliedAt"`
	RevertedAt  time.Time `json:"revertedAt,omitzero"`
	RevertedBy  string    `json:"revertedBy,omitempty"`
}

const autoTagCols = "id, app_id, policy_id, policy_name, tag, previous_tag, reason, applied_at, reverted_at, reverted_by"

func scanAutoTag(sc scanner) (AutoTag, error) {
	var t AutoTag
	var a, r int64
	err := sc.Scan(&t.ID, &t.AppID, &t.PolicyID, &t.PolicyName, &t.Tag, &t.PreviousTag, &t.Reason, &a, &r, &t.RevertedBy)
	t.AppliedAt, t.RevertedAt = fromMS(a), fromMS(r)
	return t, err
}

// AutoTags lists every automatic tag, newest first.
func (s *Store) AutoTags(ctx context.Context) ([]AutoTag, error) {
	return queryAll(ctx, s, scanAutoTag, "SELECT "+autoTagCols+" FROM auto_tags ORDER BY applied_at DESC, id DESC")
}

// ApplyAutoTag tags an app for a policy when the app has no tag and the
// policy never tagged it before (a reverted automatic tag is not set
// again); applied false otherwise.
func (s *Store) ApplyAutoTag(ctx context.Context, t AutoTag) (applied bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM app_tags WHERE app_id = ?"), t.AppID).Scan(&n); err != nil || n > 0 {
			return err
		}
		if err := tx.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM auto_tags WHERE app_id = ? AND policy_id = ?"), t.AppID, t.PolicyID).Scan(&n); err != nil || n > 0 {
			return err
		}
		now := ms(s.now())
		if _, err := tx.ExecContext(ctx, s.q("INSERT INTO app_tags (app_id, tag, updated_by, updated_at) VALUES (?, ?, ?, ?)"), t.AppID, t.Tag, "policy:"+t.PolicyName, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q("INSERT INTO auto_tags (app_id, policy_id, policy_name, tag, previous_tag, reason, applied_at) VALUES (?, ?, ?, ?, '', ?, ?)"),
			t.AppID, t.PolicyID, t.PolicyName, t.Tag, t.Reason, now); err != nil {
			return err
		}
		applied = true
		return nil
	})
	return applied, err
}

// ErrTagChanged: the app's tag is no longer the automatic one.
var ErrTagChanged = errors.New("the app's tag was changed since the policy set it; change it directly")

// RevertAutoTag undoes an automatic tag: the app gets back the tag it had
// before (none), when its tag is still the automatic one.
func (s *Store) RevertAutoTag(ctx context.Context, id int64, by string) (AutoTag, error) {
	var t AutoTag
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanAutoTag(tx.QueryRowContext(ctx, s.q("SELECT "+autoTagCols+" FROM auto_tags WHERE id = ?"), id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("automatic tag %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !t.RevertedAt.IsZero() {
			return fmt.Errorf("automatic tag %d was reverted already: %w", id, ErrExists)
		}
		var cur, by0 string
		err = tx.QueryRowContext(ctx, s.q("SELECT tag, updated_by FROM app_tags WHERE app_id = ?"), t.AppID).Scan(&cur, &by0)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur != t.Tag || by0 != "policy:"+t.PolicyName {
			return ErrTagChanged
		}
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM app_tags WHERE app_id = ?"), t.AppID); err != nil {
			return err
		}
		t.RevertedAt, t.RevertedBy = s.now().UTC(), by
		_, err = tx.ExecContext(ctx, s.q("UPDATE auto_tags SET reverted_at = ?, reverted_by = ? WHERE id = ?"), ms(t.RevertedAt), by, id)
		return err
	})
	return t, err
}
