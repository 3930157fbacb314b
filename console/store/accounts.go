package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Roles.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// Account is a local console account.
type Account struct {
	ID                int64     `json:"id"`
	Name              string    `json:"name"`
	Role              string    `json:"role"`
	PasswordHash      string    `json:"-"`
	CreatedAt         time.Time `json:"createdAt"`
	PasswordChangedAt time.Time `json:"passwordChangedAt"`
}

const accountCols = "id, name, role, password_hash, created_at, password_changed_at"

func scanAccount(sc scanner) (Account, error) {
	var a Account
	var c, p int64
	err := sc.Scan(&a.ID, &a.Name, &a.Role, &a.PasswordHash, &c, &p)
	a.CreatedAt, a.PasswordChangedAt = fromMS(c), fromMS(p)
	return a, err
}

// CreateAccount adds an account; ErrExists when the name is taken.
func (s *Store) CreateAccount(ctx context.Context, name, role, hash string) (Account, error) {
	now := s.now()
	var id int64
	err := s.w.QueryRowContext(ctx, s.q("INSERT INTO accounts (name, role, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?) RETURNING id"),
		name, role, hash, ms(now), ms(now)).Scan(&id)
	if isUnique(err) {
		return Account{}, fmt.Errorf("account %q: %w", name, ErrExists)
	}
	if err != nil {
		return Account{}, fmt.Errorf("store: create account: %w", err)
	}
	return Account{ID: id, Name: name, Role: role, PasswordHash: hash, CreatedAt: fromMS(ms(now)), PasswordChangedAt: fromMS(ms(now))}, nil
}

// Account finds an account by name.
func (s *Store) Account(ctx context.Context, name string) (Account, error) {
	a, err := scanAccount(s.queryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("account %q: %w", name, ErrNotFound)
	}
	return a, err
}

// Accounts lists every account by name.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	return queryAll(ctx, s, scanAccount, "SELECT "+accountCols+" FROM accounts ORDER BY name")
}

// SetPassword replaces an account's password hash and ends its sessions
// except keepSession (the hash of the session that made the change, or "").
func (s *Store) SetPassword(ctx context.Context, accountID int64, hash, keepSession string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, s.q("UPDATE accounts SET password_hash = ?, password_changed_at = ? WHERE id = ?"), hash, ms(s.now()), accountID)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("account %d: %w", accountID, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, s.q("DELETE FROM sessions WHERE account_id = ? AND id_hash <> ?"), accountID, keepSession)
		return err
	})
}

// DeleteAccount removes an account with its sessions and API tokens. It
// refuses to remove the last admin, so the console can always be managed.
func (s *Store) DeleteAccount(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var role string
		if err := tx.QueryRowContext(ctx, s.q("SELECT role FROM accounts WHERE name = ?"), name).Scan(&role); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("account %q: %w", name, ErrNotFound)
		} else if err != nil {
			return err
		}
		if role == RoleAdmin {
			var n int
			if err := tx.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM accounts WHERE role = ?"), RoleAdmin).Scan(&n); err != nil {
				return err
			}
			if n <= 1 {
				return fmt.Errorf("account %q is the last admin; add another admin first", name)
			}
		}
		_, err := tx.ExecContext(ctx, s.q("DELETE FROM accounts WHERE name = ?"), name)
		return err
	})
}

// CountAccounts is the number of accounts.
func (s *Store) CountAccounts(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, "SELECT COUNT(*) FROM accounts").Scan(&n)
	return n, err
}

// Session is a signed-in browser session; the cookie holds the secret whose
// SHA-256 is IDHash.
type Session struct {
	IDHash    string
	AccountID int64
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	_, err := s.exec(ctx, "INSERT INTO sessions (id_hash, account_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
		se.IDHash, se.AccountID, se.CSRF, ms(se.CreatedAt), ms(se.ExpiresAt))
	return err
}

// SessionAccount returns a session that has not expired at now, with its
// account.
func (s *Store) SessionAccount(ctx context.Context, idHash string, now time.Time) (Session, Account, error) {
	var se Session
	var c, e int64
	row := s.queryRow(ctx, "SELECT s.id_hash, s.account_id, s.csrf, s.created_at, s.expires_at, a."+
		"id, a.name, a.role, a.password_hash, a.created_at, a.password_changed_at FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.id_hash = ? AND s.expires_at > ?",
		idHash, ms(now))
	var a Account
	var ac, ap int64
	err := row.Scan(&se.IDHash, &se.AccountID, &se.CSRF, &c, &e, &a.ID, &a.Name, &a.Role, &a.PasswordHash, &ac, &ap)
	if errors.Is(err, sql.ErrNoRows) {
		return se, a, ErrNotFound
	}
	se.CreatedAt, se.ExpiresAt = fromMS(c), fromMS(e)
	a.CreatedAt, a.PasswordChangedAt = fromMS(ac), fromMS(ap)
	return se, a, err
}

// ExtendSession moves a session's expiry.
func (s *Store) ExtendSession(ctx context.Context, idHash string, expires time.Time) error {
	_, err := s.exec(ctx, "UPDATE sessions SET expires_at = ? WHERE id_hash = ?", ms(expires), idHash)
	return err
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	_, err := s.exec(ctx, "DELETE FROM sessions WHERE id_hash = ?", idHash)
	return err
}

// DeleteExpiredSessions removes sessions that expired before now.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	r, err := s.exec(ctx, "DELETE FROM sessions WHERE expires_at <= ?", ms(now))
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// APIToken is a bearer token for automation, acting as its account.
type APIToken struct {
	ID         int64     `json:"id"`
	AccountID  int64     `json:"-"`
	Account    string    `json:"account"`
	Name       string    `json:"name"`
	Hash       string    `json:"-"`
	CreatedAt  time.Time `json:"createdAt"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
}

// CreateAPIToken stores a token (by hash).
func (s *Store) CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error) {
	err := s.w.QueryRowContext(ctx, s.q("INSERT INTO api_tokens (account_id, name, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING id"),
		t.AccountID, t.Name, t.Hash, ms(t.CreatedAt), ms(t.ExpiresAt)).Scan(&t.ID)
	return t, err
}

const tokenCols = "t.id, t.account_id, a.name, t.name, t.token_hash, t.created_at, t.expires_at, t.last_used_at"

func scanToken(sc scanner) (APIToken, error) {
	var t APIToken
	var c, e, l int64
	err := sc.Scan(&t.ID, &t.AccountID, &t.Account, &t.Name, &t.Hash, &c, &e, &l)
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt = fromMS(c), fromMS(e), fromMS(l)
	return t, err
}

// APITokenAccount finds a token that has not expired at now, with its account.
func (s *Store) APITokenAccount(ctx context.Context, hash string, now time.Time) (APIToken, Account, error) {
	t, err := scanToken(s.queryRow(ctx, "SELECT "+tokenCols+" FROM api_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = ? AND (t.expires_at = 0 OR t.expires_at > ?)", hash, ms(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return t, Account{}, ErrNotFound
	}
	if err != nil {
		return t, Account{}, err
	}
	a, err := scanAccount(s.queryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE id = ?", t.AccountID))
	if err == nil && now.Sub(t.LastUsedAt) > time.Minute {
		_, _ = s.exec(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", ms(now), t.ID)
	}
	return t, a, err
}

// APITokens lists tokens (of one account when accountID > 0).
func (s *Store) APITokens(ctx context.Context, accountID int64) ([]APIToken, error) {
	return queryAll(ctx, s, scanToken, "SELECT "+tokenCols+" FROM api_tokens t JOIN accounts a ON a.id = t.account_id WHERE ? = 0 OR t.account_id = ? ORDER BY t.id", accountID, accountID)
}

// DeleteAPIToken revokes a token (of one account when accountID > 0).
func (s *Store) DeleteAPIToken(ctx context.Context, id, accountID int64) error {
	return s.execOne(ctx, fmt.Sprintf("API token %d", id), "DELETE FROM api_tokens WHERE id = ? AND (? = 0 OR account_id = ?)", id, accountID, accountID)
}
