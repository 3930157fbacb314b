package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// Secret prefixes tell a leaked secret's kind at a glance (and let secret
// scanners find them).
const (
	PrefixEnrollKey   = "nwe_"
	PrefixDeviceToken = "nwd_"
	PrefixAPIToken    = "nwt_"
)

// NewSecret returns a random secret with prefix (256 bits) and the hash the
// store keeps. Secrets have full entropy, so a plain SHA-256 is the right
// hash: slow hashes protect guessable passwords, not random keys.
func NewSecret(prefix string) (secret, hash string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on supported systems (Go 1.24+ crashes itself)
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is the stored form of a secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	return hex.EncodeToString(sum[:])
}

func randIntn(n int) int {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int(binary.LittleEndian.Uint64(b[:]) % uint64(n))
}
