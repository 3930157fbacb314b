// Package inspect decides connections from their first bytes. Two layers:
//
//   - Parsers read the server name out of what a client sends first: a TLS
//     ClientHello (through crypto/tls itself), a QUIC v1/v2 Initial packet
//     (RFC 9001 §5, RFC 9369) and a plain HTTP/1.x request (request line +
//     Host), with the per-flow TCP reassembly (TCPStream) and QUIC CRYPTO
//     stream (QUICFlow) that feed them.
//   - The Engine follows each new outgoing flow for a few packets (IP, TCP and
//     UDP headers decoded with gopacket), asks the filter.Decider about its
//     address, name or HTTP request, and returns a Verdict per packet and an
//     Event per flow, with typed Source, Protocol and Reason. The Watchdog
//     bounds how long one packet's decision may take.
//
// The package knows nothing of the kernel: filter/hostnet feeds it the
// packets of an NFQUEUE and turns its verdicts into packet marks.
//
// Everything here parses untrusted network bytes, so every parser is pure,
// bounded (no buffer grows past MaxHello / MaxHTTPHeader) and returns either a
// value or one of the sentinel errors: ErrNeedMore ("give me more bytes, the
// prefix so far is valid"), ErrMalformed ("this is not what it claims to be")
// or ErrTooLarge ("past our bound"). Nothing panics on any input; fuzz tests
// seeded from real captures in testdata/inspect check that, through the
// parsers and through the Engine.
package inspect
