package indicators

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Helpers shared by the feed handlers: this package's Handler (serve-feed)
// and the console's feed publisher answer long polls the same way.

// ETagMatches reports whether an If-None-Match header names version
// (RFC 9110 §13.1.2).
func ETagMatches(header, version string) bool { return etagMatches(header, version) }

// errWait is the answer to a bad ?wait.
var errWait = errors.New("wait must be a number of seconds")

// LongPollTimer reads ?wait=SECONDS (capped at max) and returns a channel
// that fires when the wait is over — nil when there is no wait, so a
// select on it blocks for ever — and the function that releases it.
func LongPollTimer(r *http.Request, max time.Duration) (<-chan time.Time, func(), error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return nil, func() {}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return nil, func() {}, errWait
	}
	wait := min(time.Duration(n)*time.Second, max)
	if wait <= 0 {
		return nil, func() {}, nil
	}
	t := time.NewTimer(wait)
	return t.C, func() { t.Stop() }, nil
}
