package warnpage

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The local CA lets the sink show the warn page over HTTPS. It is generated on
// the device, its key never leaves the data directory (mode 0600), and it is
// trusted only where an administrator deploys its certificate (netward ca
// export). Leaf certificates are short-lived and minted per server name.

const (
	caCertFile = "netward-ca.pem"
	caKeyFile  = "netward-ca-key.pem"
	caValidity = 10 * 365 * 24 * time.Hour
	leafLife   = 24 * time.Hour
	maxLeaves  = 1024
)

// CAFiles returns the paths of the CA certificate and key in dataDir.
func CAFiles(dataDir string) (cert, key string) {
	d := filepath.Join(dataDir, "ca")
	return filepath.Join(d, caCertFile), filepath.Join(d, caKeyFile)
}

// ReadCACert returns the PEM of the CA certificate in dataDir without
// creating anything (netward ca export works offline).
func ReadCACert(dataDir string) ([]byte, error) {
	certPath, _ := CAFiles(dataDir)
	b, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no local CA in %s: set \"warn\": {\"localCA\": true} in the config and start the agent once", filepath.Dir(certPath))
	}
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s does not hold a PEM certificate", certPath)
	}
	return b, nil
}

// CA is the local certificate authority.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	leafKey *ecdsa.PrivateKey
	now     func() time.Time

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

// LoadOrCreateCA loads the CA from dataDir, generating it (ECDSA P-256) on
// first use.
func LoadOrCreateCA(dataDir string, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	certPath, keyPath := CAFiles(dataDir)
	ca := &CA{now: now, leaves: map[string]*tls.Certificate{}}
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		if err := ca.parse(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("local CA in %s: %w (delete both files to generate a new CA, then redeploy it)", filepath.Dir(certPath), err)
		}
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
		if err := ca.generate(certPath, keyPath); err != nil {
			return nil, fmt.Errorf("generate local CA: %w", err)
		}
	default:
		return nil, fmt.Errorf("local CA in %s is incomplete (%v, %v); delete both files to generate a new one", filepath.Dir(certPath), cerr, kerr)
	}
	lk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca.leafKey = lk
	return ca, nil
}

func (ca *CA) parse(certPEM, keyPEM []byte) error {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return err
	}
	if !cert.IsCA || !key.PublicKey.Equal(cert.PublicKey) {
		return errors.New("certificate and key do not form a CA")
	}
	ca.cert, ca.key = cert, key
	return nil
}

func (ca *CA) generate(certPath, keyPath string) error {
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"netward"}, CommonName: "netward local CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	// Key first, exclusively and 0600, so a crash never leaves a certificate
	// whose key is missing.
	if err := writeFileExcl(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	if err := writeFileExcl(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	ca.cert, ca.key = cert, key
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// Certificate is the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Leaf returns a certificate for name, minted on first use and cached until
// it nears expiry. The cache is bounded: past maxLeaves it is emptied.
func (ca *CA) Leaf(name string) (*tls.Certificate, error) {
	now := ca.now()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c, ok := ca.leaves[name]; ok && now.Add(time.Hour).Before(c.Leaf.NotAfter) {
		return c, nil
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(leafLife),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("mint certificate for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: ca.leafKey, Leaf: leaf}
	if len(ca.leaves) >= maxLeaves {
		clear(ca.leaves)
	}
	ca.leaves[name] = c
	return c, nil
}
