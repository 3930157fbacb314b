// Package inspect reads the server name out of the first bytes a client sends:
// a TLS ClientHello (through crypto/tls itself), a QUIC v1/v2 Initial packet
// (RFC 9001 §5, RFC 9369) and a plain HTTP/1.x request (request line + Host).
//
// Everything here parses untrusted network bytes, so every function is pure,
// bounded (no buffer grows past MaxHello / MaxHTTPHeader) and returns either a
// value or one of the sentinel errors: ErrNeedMore ("give me more bytes, the
// prefix so far is valid"), ErrMalformed ("this is not what it claims to be")
// or ErrTooLarge ("past our bound"). Nothing panics on any input; fuzz tests
// seeded from real captures in testdata/inspect check that.
package inspect
