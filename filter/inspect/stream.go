package inspect

// maxSpans bounds how many disjoint pieces a Stream tracks. A client that
// sends its first few KiB in more holes than this is not a browser; the
// stream is reported malformed instead of growing bookkeeping without end.
const maxSpans = 64

type span struct{ start, end int }

// Stream reassembles the first max bytes of a byte stream from pieces that
// arrive by offset: out of order, overlapping, duplicated or tiny. It serves
// TCP payload (offset = sequence number − ISN) and the QUIC CRYPTO stream
// (offset from the CRYPTO frame, RFC 9000 §19.6).
//
// Overlaps keep the first copy: RFC 9293 §3.10.7.4 leaves the choice to the
// receiver, and first-wins means a later segment can never rewrite bytes that
// were already parsed (the classic overlapping-segment evasion).
type Stream struct {
	buf  []byte
	segs []span // sorted, disjoint, non-adjacent
	max  int
	err  error // sticky: ErrMalformed after too many holes
}

// NewStream returns a Stream that keeps at most max bytes.
func NewStream(max int) *Stream { return &Stream{max: max} }

// Reset empties s for reuse, keeping its buffer.
func (s *Stream) Reset() {
	s.buf = s.buf[:0]
	s.segs = s.segs[:0]
	s.err = nil
}

// Write places p at offset off. Bytes past the bound are dropped and reported
// as ErrTooLarge (what fits is kept); more than maxSpans holes is ErrMalformed.
func (s *Stream) Write(off uint64, p []byte) error {
	if s.err != nil {
		return s.err
	}
	if len(p) == 0 {
		return nil
	}
	if off >= uint64(s.max) {
		return ErrTooLarge
	}
	var err error
	start := int(off)
	if len(p) > s.max-start {
		p = p[:s.max-start]
		err = ErrTooLarge
	}
	end := start + len(p)
	if len(s.buf) < end {
		if cap(s.buf) < end {
			n := max(end, 2*cap(s.buf), 512)
			nb := make([]byte, end, min(n, s.max))
			copy(nb, s.buf)
			s.buf = nb
		} else {
			s.buf = s.buf[:end]
		}
	}
	// Copy only into the gaps: first copy wins.
	pos := start
	for _, sp := range s.segs {
		if sp.end <= pos {
			continue
		}
		if sp.start >= end {
			break
		}
		if sp.start > pos {
			copy(s.buf[pos:sp.start], p[pos-start:sp.start-start])
		}
		pos = max(pos, sp.end)
		if pos >= end {
			break
		}
	}
	if pos < end {
		copy(s.buf[pos:end], p[pos-start:])
	}
	s.insert(span{start, end})
	if len(s.segs) > maxSpans {
		s.err = ErrMalformed
		return s.err
	}
	return err
}

// insert adds sp to the sorted span list, merging overlapping or adjacent spans.
func (s *Stream) insert(sp span) {
	i := 0
	for i < len(s.segs) && s.segs[i].end < sp.start {
		i++
	}
	j := i
	for j < len(s.segs) && s.segs[j].start <= sp.end {
		sp.start = min(sp.start, s.segs[j].start)
		sp.end = max(sp.end, s.segs[j].end)
		j++
	}
	if i == j {
		s.segs = append(s.segs, span{})
		copy(s.segs[i+1:], s.segs[i:])
		s.segs[i] = sp
		return
	}
	s.segs[i] = sp
	s.segs = append(s.segs[:i+1], s.segs[j:]...)
}

// Contiguous returns the bytes received without a hole from offset 0. The
// slice aliases s's buffer and is valid until the next Write or Reset.
func (s *Stream) Contiguous() []byte {
	if len(s.segs) == 0 || s.segs[0].start != 0 {
		return nil
	}
	return s.buf[:s.segs[0].end]
}

// TCPStream reassembles the first bytes a TCP client sends, by sequence number
// relative to the initial sequence number from the SYN (RFC 9293 §3.4).
type TCPStream struct {
	Stream
	isn     uint32 // sequence number of the first payload byte
	haveISN bool
}

// NewTCPStream returns a TCPStream keeping at most max bytes.
func NewTCPStream(max int) *TCPStream { return &TCPStream{Stream: Stream{max: max}} }

// Start returns the sequence number of the stream's first payload byte
// (ISN+1), and false before any segment set it.
func (t *TCPStream) Start() (uint32, bool) { return t.isn, t.haveISN }

// Segment adds one TCP segment. syn marks the SYN (its sequence number is the
// ISN; payload on a SYN, as with TCP Fast Open, starts at ISN+1). Without a
// SYN the first data segment seen sets the base, which is right unless that
// segment arrived out of order.
func (t *TCPStream) Segment(seq uint32, syn bool, payload []byte) error {
	if syn {
		if !t.haveISN {
			t.isn, t.haveISN = seq+1, true
		}
		seq++
	}
	if len(payload) == 0 {
		return nil
	}
	if !t.haveISN {
		t.isn, t.haveISN = seq, true
	}
	rel := seq - t.isn // modulo 2^32
	if rel >= 1<<31 {  // starts before the ISN: keep the part after it
		skip := -int64(int32(rel))
		if skip >= int64(len(payload)) {
			return nil
		}
		payload = payload[skip:]
		rel = 0
	}
	return t.Write(uint64(rel), payload)
}
