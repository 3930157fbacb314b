//go:build !linux

package dnsproxy

import "time"

// queryBatch sends the upstream queries of a fast-path socket reader's read
// batch together on Linux (upbatch_linux.go); here there is none
// (newQueryBatch is nil) and each query leaves at once.
type queryBatch struct{}

func newQueryBatch() *queryBatch { return nil }

// sock is the batch's socket of upstream i: none here.
func (q *queryBatch) sock(u *upstreams, i int, now time.Time) *upSock { return nil }

// add sends req at once (never reached: there is no batch here).
func (q *queryBatch) add(a *upAttempt, req *upQuery) error {
	var b [512]byte
	wire, err := appendUpstreamQuery(b[:0], req)
	if err != nil {
		return err
	}
	return writeWaking(a.s.conn, wire, nil)
}

func (q *queryBatch) flush(g *readerGroup) {}
