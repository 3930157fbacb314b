package inspect

import "errors"

var (
	// ErrNeedMore means the bytes so far are a valid prefix; wait for more.
	ErrNeedMore = errors.New("inspect: incomplete, need more bytes")
	// ErrMalformed means the bytes cannot be what the parser reads (not TLS,
	// not a QUIC Initial, not an HTTP request, or corrupt).
	ErrMalformed = errors.New("inspect: malformed")
	// ErrTooLarge means the message is larger than the parser's bound.
	ErrTooLarge = errors.New("inspect: message exceeds size bound")
)
