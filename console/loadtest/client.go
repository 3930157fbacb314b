package loadtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync/atomic"
	"time"
)

// sources hands out local addresses in 127.0.0.0/8 round robin: one
// address has ~28,000 ephemeral ports towards the console's one port, so
// 20,000 held polls plus uploads need several (every 127.x address is the
// loopback on Linux).
type sources struct {
	addrs []*net.TCPAddr
	next  atomic.Uint64
}

func newSources(n int) *sources { return newSourcesFrom(0, n) }

// newSourcesFrom is n addresses starting at the base-th one.
func newSourcesFrom(base, n int) *sources {
	s := &sources{}
	for i := base; i < base+max(n, 1); i++ {
		s.addrs = append(s.addrs, &net.TCPAddr{IP: net.IPv4(127, 77, byte(i/250), byte(1+i%250))})
	}
	return s
}

// counter counts the bytes a transport's connections read and wrote.
type counter struct{ read, written atomic.Int64 }

type countedConn struct {
	net.Conn
	c *counter
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.read.Add(int64(n))
	return n, err
}

func (c countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.c.written.Add(int64(n))
	return n, err
}

// newTransport is an HTTP/1.1 client transport (each agent holds its own
// connection, as real endpoints do) dialling from the sources, pinning the
// console's certificate by its SHA-256 fingerprint.
func newTransport(src *sources, fingerprint string, conns int, cnt *counter) *http.Transport {
	want := normFP(fingerprint)
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dd := *d
			if strings.HasPrefix(addr, "127.") {
				dd.LocalAddr = src.addrs[src.next.Add(1)%uint64(len(src.addrs))]
			}
			c, err := dd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countedConn{c, cnt}, nil
		},
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // the self-signed certificate is pinned below instead
			VerifyConnection: func(cs tls.ConnectionState) error {
				if want == "" {
					return nil
				}
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if hex.EncodeToString(sum[:]) != want {
					return errors.New("console certificate does not match the pinned fingerprint")
				}
				return nil
			},
		},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true, // the feed's gzip is counted as sent
		TLSHandshakeTimeout: 30 * time.Second,
	}
}

func normFP(s string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s))
}

// admin is a signed-in API session.
type admin struct {
	base string
	hc   *http.Client
	csrf string
}

func newAdmin(ctx context.Context, base string, tr *http.Transport, name, password string) (*admin, error) {
	jar, _ := cookiejar.New(nil)
	a := &admin{base: base, hc: &http.Client{Transport: tr, Jar: jar, Timeout: time.Minute}}
	var out struct {
		CSRF string `json:"csrfToken"`
	}
	if err := a.call(ctx, "POST", "/api/login", map[string]string{"name": name, "password": password}, &out); err != nil {
		return nil, fmt.Errorf("loadtest: sign in as %s: %w", name, err)
	}
	a.csrf = out.CSRF
	return a, nil
}

func (a *admin) call(ctx context.Context, method, path string, in, out any) error {
	return a.callAt(ctx, a.base, method, path, in, out)
}

// callAt calls another replica with the same session (sessions live in
// the shared database; cookies are per host, not per port).
func (a *admin) callAt(ctx context.Context, base, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.csrf != "" {
		req.Header.Set("X-CSRF-Token", a.csrf)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
