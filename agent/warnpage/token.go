package warnpage

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Continue tokens. A token is bound to the site name and to a per-browser
// nonce that lives in a SameSite=Strict cookie, and it expires. It is an HMAC
// under a per-install secret, so nothing but this agent can mint one, and a
// page on another origin can neither read it (same-origin policy) nor make the
// browser send the cookie with its POST (SameSite=Strict).

var (
	errTokenMalformed = errors.New("malformed token")
	errTokenExpired   = errors.New("token expired")
	errTokenInvalid   = errors.New("token does not match this site")
)

const tokenMACLen = 16

func tokenMAC(key []byte, name, nonce string, exp int64) []byte {
	m := hmac.New(sha256.New, key)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp))
	m.Write([]byte("netward-continue-v1\x00"))
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(nonce))
	m.Write([]byte{0})
	m.Write(b[:])
	return m.Sum(nil)[:tokenMACLen]
}

// mintToken returns a token for name and nonce valid until exp.
func mintToken(key []byte, name, nonce string, exp time.Time) string {
	var b [8 + tokenMACLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(exp.Unix()))
	copy(b[8:], tokenMAC(key, name, nonce, exp.Unix()))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// checkToken verifies tok for name and nonce at now.
func checkToken(key []byte, tok, name, nonce string, now time.Time) error {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != 8+tokenMACLen {
		return errTokenMalformed
	}
	exp := int64(binary.BigEndian.Uint64(b[:8]))
	if subtle.ConstantTimeCompare(b[8:], tokenMAC(key, name, nonce, exp)) != 1 {
		return errTokenInvalid
	}
	if now.Unix() >= exp {
		return errTokenExpired
	}
	return nil
}

// LoadOrCreateKey reads the per-install secret from dir/warn.key, creating it
// (32 random bytes, mode 0600) if missing.
func LoadOrCreateKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, "warn.key")
	if b, err := os.ReadFile(path); err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("warn page key %s is too short; delete it and netward creates a new one", path)
		}
		return b, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read warn page key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := writeFileExcl(path, key, 0o600); err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return LoadOrCreateKey(dir)
		}
		return nil, fmt.Errorf("write warn page key: %w", err)
	}
	return key, nil
}

// writeFileExcl writes a new file atomically enough for secrets: created
// exclusively with its final mode, synced.
func writeFileExcl(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
