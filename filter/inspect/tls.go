package inspect

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

const (
	// MaxHello bounds the ClientHello handshake message body (RFC 8446 §4.1.2).
	// Real hellos, post-quantum key shares included, are 0.3–2.5 KiB; 16 KiB
	// leaves room for large session tickets while bounding memory per flow.
	MaxHello = 16 << 10
	// MaxHelloStream bounds the client's first bytes: the hello plus the TLS
	// record headers around it, allowing for a client that fragments the hello
	// into many small records (RFC 8446 §5.1 permits any fragmentation).
	MaxHelloStream = MaxHello + 4 + 5*256

	recordTypeHandshake   = 22
	handshakeClientHello  = 1
	maxPlaintextRecordLen = 1 << 14 // RFC 8446 §5.1
)

// ClientHello is what inspection needs from a TLS ClientHello.
type ClientHello struct {
	ServerName        string   // SNI host name; "" when absent (IP-literal or omitted)
	SupportedVersions []uint16 // from supported_versions, or legacy_version
	ALPN              []string
	ECH               bool // carries an encrypted_client_hello extension (outer hello)
}

const extensionECH = 0xfe0d // draft-ietf-tls-esni

// HelloLength checks cheaply that b starts with TLS handshake records carrying
// a ClientHello and returns how many bytes of b hold the complete hello
// (whole records). It is the cryptobyte pre-check that rejects non-TLS before
// crypto/tls is involved.
func HelloLength(b []byte) (int, error) {
	s := cryptobyte.String(b)
	var hdr [4]byte // the handshake message header, gathered across records
	got := 0        // handshake bytes seen
	need := -1
	used := 0
	for {
		var typ uint8
		var vers uint16
		var body cryptobyte.String
		if len(s) == 0 {
			return 0, ErrNeedMore
		}
		if !s.ReadUint8(&typ) {
			return 0, ErrNeedMore
		}
		if typ != recordTypeHandshake {
			return 0, ErrMalformed
		}
		if !s.ReadUint16(&vers) {
			return 0, ErrNeedMore
		}
		if vers>>8 != 3 || vers&0xff > 4 {
			return 0, ErrMalformed
		}
		var n uint16
		if !s.ReadUint16(&n) {
			return 0, ErrNeedMore
		}
		if n == 0 || n > maxPlaintextRecordLen {
			return 0, ErrMalformed
		}
		if used+5+int(n) > MaxHelloStream {
			return 0, ErrTooLarge
		}
		if !s.ReadBytes((*[]byte)(&body), int(n)) {
			return 0, ErrNeedMore
		}
		used += 5 + int(n)
		i := 0
		for ; got < 4 && i < len(body); i++ {
			hdr[got] = body[i]
			got++
		}
		got += len(body) - i
		if need < 0 && got >= 4 {
			if hdr[0] != handshakeClientHello {
				return 0, ErrMalformed
			}
			l := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
			if l > MaxHello {
				return 0, ErrTooLarge
			}
			if l < 38 { // version + random + session id length at least
				return 0, ErrMalformed
			}
			need = 4 + l
		}
		if need >= 0 && got >= need {
			if got > need {
				// Another handshake message shares the record: a client never
				// sends one before the server's reply.
				return 0, ErrMalformed
			}
			return used, nil
		}
	}
}

// errHelloCaptured aborts the crypto/tls handshake once the hello is read.
var errHelloCaptured = errors.New("inspect: client hello captured")

// ParseClientHello reads the ClientHello at the start of b, the client's
// first bytes in order. It returns ErrNeedMore while b is a valid but
// incomplete prefix, ErrMalformed when b is not a TLS ClientHello, and
// ErrTooLarge past MaxHello.
//
// The hello itself is parsed by crypto/tls: a server handshake runs on a
// read-only in-memory conn and is aborted from GetConfigForClient, so the
// extension parsing is the standard library's, not ours.
func ParseClientHello(b []byte) (ClientHello, error) {
	n, err := HelloLength(b)
	if err != nil {
		return ClientHello{}, err
	}
	var out ClientHello
	captured := false
	cfg := &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			out.ServerName = chi.ServerName
			out.SupportedVersions = chi.SupportedVersions
			out.ALPN = chi.SupportedProtos
			for _, e := range chi.Extensions {
				if e == extensionECH {
					out.ECH = true
				}
			}
			captured = true
			return nil, errHelloCaptured
		},
	}
	c := &readOnlyConn{b: b[:n]}
	// context.Background has no Done channel, so no goroutine is started;
	// the conn never blocks, so the call is bounded by the n bytes.
	_ = tls.Server(c, cfg).HandshakeContext(context.Background())
	if !captured {
		return ClientHello{}, ErrMalformed
	}
	return out, nil
}

// readOnlyConn feeds b to crypto/tls and swallows what it writes (an alert).
type readOnlyConn struct {
	b []byte
}

func (c *readOnlyConn) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.b)
	c.b = c.b[n:]
	return n, nil
}

func (c *readOnlyConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *readOnlyConn) Close() error                     { return nil }
func (c *readOnlyConn) LocalAddr() net.Addr              { return dummyAddr{} }
func (c *readOnlyConn) RemoteAddr() net.Addr             { return dummyAddr{} }
func (c *readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (c *readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (c *readOnlyConn) SetWriteDeadline(time.Time) error { return nil }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "inspect" }
func (dummyAddr) String() string  { return "inspect" }
