package telemetry

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// The journal holds records until their chunk is compressed into the spool.
// A journal file <instance>-<seq>.ndjson (seq: its first chunk's) holds the
// lines of one or more consecutive chunks; its index <id>.idx says where each
// chunk starts ("open SEQ OFFSET"), where it ends ("chunk SEQ END LINES") and
// which are already spooled ("spooled SEQ"). Writing small chunks into one
// file costs a write(2) each, where a file per chunk cost a create (about a
// millisecond on a busy disk): a burst of 3,000 records in 5-record chunks
// reaches the disk in one commit (issue 20 #3). A new file starts at a chunk
// boundary once the current one holds journalRotate bytes, and a file is
// deleted once all its chunks are spooled. A journal without an index (an
// older agent's) is one chunk.

// journalRotate is the size from which the next chunk starts a new file.
//
// 8 MiB, not 1: a chunk of 4,000 blocked DNS answers is ~1.1 MB, so at
// 1 MiB every chunk made a journal file and its index, and deleted both once
// spooled — under a flood of blocked names (~20 chunks a second) that was
// 40 files created and 40 deleted a second, besides the spool's one per
// chunk. On ext4 without a journal (the machine of issue 21: "mounted
// filesystem without journal") the inode allocator skips every inode freed
// in the last minute (six while its inode-table block is dirty; ext4
// recently_deleted(), checked only when there is no journal), one buffer
// lookup each, so a create's cost grows with the deletes before it, ours
// and any other process's: ~1 ms of CPU each, openat 7 % of the agent's
// CPU in one profile (perf: ext4_create → find_inode_bit →
// recently_deleted). At 8 MiB a file holds ~7 such chunks, so the journal
// creates and deletes a file pair per ~7 chunks. What it costs: a file's
// spooled chunks stay on disk until its last one is spooled (≤ 8 MiB +
// ChunkBytes), and recovery reads only the chunks not yet spooled
// (recoverJournal). Durability is unchanged: rotation only decides which
// file the next chunk's lines go to.
const journalRotate = 8 << 20

// seqBlock is how many sequence numbers one write of the seq file reserves:
// a chunk id is never reused, and small chunks do not cost one fsync'd file
// each.
const seqBlock = 1024

// jfile is one journal file.
type jfile struct {
	id   string
	f    *os.File // nil once the file is closed (rotated, or recovered)
	size int64
	idx  []byte // index lines not yet written
	ixf  *os.File
	// live counts its chunks not yet spooled (the open one included).
	live  int
	dirty bool // written since the last fsync
}

func (p *Pipeline) jpath(id string) string { return filepath.Join(p.jdir, id+".ndjson") }
func (p *Pipeline) ipath(id string) string { return filepath.Join(p.jdir, id+".idx") }

// openChunk is the chunk being written: its lines start at off in j.
type openChunk struct {
	seq     uint64
	j       *jfile
	off     int64
	records int64
	bytes   int64
	first   time.Time
}

// doneChunk is a complete chunk waiting to be spooled: n bytes at off in j.
type doneChunk struct {
	seq     uint64
	j       *jfile
	off, n  int64
	records int64
}

// reserveSeq returns the next chunk sequence number, persisting a block of
// reservations first when the last one is used up.
func (p *Pipeline) reserveSeq() (uint64, error) {
	seq := p.nextSeq
	if seq >= p.seqLimit {
		lim := seq + seqBlock
		if err := writeFileSync(filepath.Join(p.cfg.Dir, "seq"), []byte(strconv.FormatUint(lim, 10))); err != nil {
			return 0, err
		}
		p.seqLimit = lim
	}
	p.nextSeq++
	return seq, nil
}

// startChunk opens a chunk at the end of the current journal file, or of a
// new one.
func (p *Pipeline) startChunk() error {
	seq, err := p.reserveSeq()
	if err != nil {
		return err
	}
	if p.cur == nil || p.cur.size >= p.rotateAt {
		if err := p.rotate(formatChunkID(p.instance, seq)); err != nil {
			return err
		}
	}
	j := p.cur
	j.live++
	j.idx = fmt.Appendf(j.idx, "open %d %d\n", seq, j.size)
	p.open = &openChunk{seq: seq, j: j, off: j.size, first: p.cfg.Now()}
	return nil
}

// rotate closes the current journal file (its chunks are all complete) and
// creates the next one, named id.
func (p *Pipeline) rotate(id string) error {
	if err := p.closeCur(); err != nil {
		return err
	}
	f, err := os.OpenFile(p.jpath(id), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("telemetry: open journal: %w", err)
	}
	ixf, err := os.OpenFile(p.ipath(id), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		f.Close()
		return fmt.Errorf("telemetry: open journal index: %w", err)
	}
	p.newJournal = true
	p.bw.Reset(f)
	p.cur = &jfile{id: id, f: f, ixf: ixf}
	return nil
}

// closeCur writes out and closes the current journal file; it stays on disk
// until its chunks are spooled.
func (p *Pipeline) closeCur() error {
	j := p.cur
	if j == nil {
		return nil
	}
	err := p.flushJournal()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if cerr := j.ixf.Close(); err == nil {
		err = cerr
	}
	j.f, j.ixf = nil, nil
	p.cur = nil
	if err != nil {
		return fmt.Errorf("telemetry: close journal: %w", err)
	}
	return nil
}

// appendLine writes one line to the open chunk (opening one if needed).
func (p *Pipeline) appendLine(line []byte) error {
	if p.open == nil {
		if err := p.startChunk(); err != nil {
			return err
		}
	}
	j := p.open.j
	if _, err := p.bw.Write(line); err != nil {
		return fmt.Errorf("telemetry: write journal: %w", err)
	}
	j.size += int64(len(line))
	p.open.records++
	p.open.bytes += int64(len(line))
	p.journaled.Add(1)
	if !j.dirty {
		j.dirty = true
		p.dirty = append(p.dirty, j)
	}
	return nil
}

// completeChunk ends the open chunk; it waits in p.full for spoolFull.
func (p *Pipeline) completeChunk() error {
	// The producer's held-back records (the DNS answer window) belong to
	// the chunk being closed: every chunk close flushes the window.
	if err := p.drainInto(); err != nil {
		return err
	}
	oc := p.open
	oc.j.idx = fmt.Appendf(oc.j.idx, "chunk %d %d %d\n", oc.seq, oc.off+oc.bytes, oc.records)
	p.full = append(p.full, doneChunk{seq: oc.seq, j: oc.j, off: oc.off, n: oc.bytes, records: oc.records})
	p.open = nil
	return nil
}

// flushJournal moves the buffered lines and index entries of the current
// file to the kernel: from here a kill -9 cannot lose them.
func (p *Pipeline) flushJournal() error {
	j := p.cur
	if j == nil {
		return nil
	}
	if err := p.bw.Flush(); err != nil {
		return fmt.Errorf("telemetry: write journal: %w", err)
	}
	if len(j.idx) > 0 {
		if _, err := j.ixf.Write(j.idx); err != nil {
			return fmt.Errorf("telemetry: write journal index: %w", err)
		}
		j.idx = j.idx[:0]
	}
	return nil
}

// syncJournals makes every journal file written since the last call durable,
// with its index, in one group (syncFiles), and the directory when a file
// was created.
func (p *Pipeline) syncJournals() error {
	if err := p.flushJournal(); err != nil {
		return err
	}
	if len(p.dirty) == 0 && !p.newJournal {
		return nil
	}
	paths := make([]string, 0, 2*len(p.dirty))
	for _, j := range p.dirty {
		paths = append(paths, p.jpath(j.id), p.ipath(j.id))
		j.dirty = false
	}
	if err := syncFiles(p.jdir, paths); err != nil {
		return fmt.Errorf("telemetry: sync journal: %w", err)
	}
	if p.newJournal {
		if err := syncDir(p.jdir); err != nil {
			return fmt.Errorf("telemetry: %w", err)
		}
	}
	p.dirty, p.newJournal = p.dirty[:0], false
	return nil
}

// spoolFull compresses the complete chunks into the spool: every chunk to a
// temp file, one group fsync, the renames, one fsync of the directory; only
// then are they marked spooled and journal files whose chunks are all
// spooled removed. A crash at any point leaves every record in the journal
// or the spool (or both: the same chunk id with the same lines, which the
// collector takes once). On an error the chunks stay in p.full and the next
// commit tries again. The journals must be durable first (syncJournals):
// a spooled chunk's index entry is never lost.
//
// budget > 0 bounds the time spent compressing: the rest waits for the next
// commit, so a backlog of small chunks (each a file to create) never holds
// new records out of the journal for more than about half a commit
// interval.
func (p *Pipeline) spoolFull(budget time.Duration) error {
	if len(p.full) == 0 {
		return nil
	}
	if err := p.syncJournals(); err != nil {
		return err
	}
	start := time.Now()
	entries := make([]*chunkEntry, 0, len(p.full))
	tmps := make([]string, 0, len(p.full))
	fail := func(err error) error {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
		return err
	}
	var src *os.File
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	for _, c := range p.full {
		if budget > 0 && len(entries) > 0 && time.Since(start) > budget {
			break
		}
		if src == nil || src.Name() != p.jpath(c.j.id) {
			if src != nil {
				src.Close()
			}
			var err error
			if src, err = os.Open(p.jpath(c.j.id)); err != nil {
				return fail(fmt.Errorf("telemetry: reopen journal: %w", err))
			}
		}
		e, tmp, err := p.compress(c, src)
		if tmp != "" {
			tmps = append(tmps, tmp)
		}
		if err != nil {
			return fail(err)
		}
		entries = append(entries, e)
	}
	if src != nil {
		// Closed before the journal files whose chunks are all spooled are
		// removed below: Windows removes no open file (os.Open does not
		// share delete), and a journal file left behind is spooled again
		// at the next start.
		src.Close()
		src = nil
	}
	done := p.full[:len(entries)]
	if err := syncFiles(p.spool.dir, tmps); err != nil {
		return fail(fmt.Errorf("telemetry: sync spool: %w (is the disk full?)", err))
	}
	for i, e := range entries {
		if err := os.Rename(tmps[i], filepath.Join(p.spool.dir, e.name())); err != nil {
			return fail(fmt.Errorf("telemetry: spool chunk %s: %w", e.id, err))
		}
	}
	if err := syncDir(p.spool.dir); err != nil {
		return fmt.Errorf("telemetry: spool: %w", err)
	}
	for i, c := range done {
		p.addToSpool(entries[i])
		p.journaled.Add(-c.records)
		c.j.live--
		if c.j.live == 0 && c.j != p.cur {
			// Every chunk of a closed file is spooled: it goes.
			_ = os.Remove(p.jpath(c.j.id))
			_ = os.Remove(p.ipath(c.j.id))
		} else if c.j == p.cur {
			c.j.idx = fmt.Appendf(c.j.idx, "spooled %d\n", c.seq)
		}
	}
	p.full = append(p.full[:0], p.full[len(done):]...)
	if j := p.cur; j != nil && j.live == 0 && p.open == nil {
		// Nothing left in the current file: drop it; the next record
		// starts a new one.
		if err := p.closeCur(); err != nil {
			return err
		}
		_ = os.Remove(p.jpath(j.id))
		_ = os.Remove(p.ipath(j.id))
	}
	select {
	case p.spoolSig <- struct{}{}:
	default:
	}
	return nil
}

// spoolLevel is the compression level of spooled chunks, with
// github.com/klauspost/compress/gzip, whose output is a standard gzip member
// (the console's Kafka publisher and raw-chunk reader and `netward
// telemetry` read it with compress/gzip, its ingest with klauspost's reader
// held to compress/gzip's rules; TestSpoolChunkStdlibGzip). Under a flood of blocked DNS names the agent
// closes ~20 chunks a second, and compressing them with the standard
// library at BestSpeed was 13.5 % of the agent's CPU (issue 21). On a chunk
// of 4,000 blocked answers (BenchmarkSpoolGzip, docs/dns.md "Fifteenth
// part") klauspost's BestSpeed runs at ~800 MB/s against the standard
// library's ~475 for an output 1.7 % larger (ratio 0.069 against 0.068);
// its levels 2 and 3 compress 6–10 % better but run at ~670 MB/s. The CPU
// is what issue 21 measures, and the spool's bound is in compressed bytes
// either way.
const spoolLevel = gzip.BestSpeed

// compress gzips chunk c of journal file src into a temp file in the spool.
func (p *Pipeline) compress(c doneChunk, src *os.File) (*chunkEntry, string, error) {
	e := &chunkEntry{id: formatChunkID(p.instance, c.seq), seq: c.seq, records: c.records}
	tmp := filepath.Join(p.spool.dir, e.name()+".tmp")
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("telemetry: create spool file: %w", err)
	}
	p.gz.Reset(dst)
	// klauspost's writer puts uint32(ModTime.Unix()) in the header even for
	// the zero time (a made-up 2042-07-14, where compress/gzip writes 0, "no
	// time stamp"); Reset clears the header, so at every chunk.
	p.gz.ModTime = time.Unix(0, 0)
	// The journal is read back rather than the chunk kept in memory: a
	// chunk is up to ChunkBytes (4 MiB) and the agent's heap is what
	// issue 21 bounds; the lines were just written, so this is a copy
	// from the page cache (0.4 % of the agent's CPU under the blocked
	// flood, against 12.7 % for the standard library's gzip).
	_, err = io.CopyBuffer(p.gz, io.NewSectionReader(src, c.off, c.n), p.rbuf)
	if err == nil {
		err = p.gz.Close()
	}
	if fi, serr := dst.Stat(); serr == nil {
		e.size = fi.Size()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, tmp, fmt.Errorf("telemetry: spool chunk %s: %w (is the disk full?)", e.id, err)
	}
	return e, tmp, nil
}

// addToSpool registers a chunk renamed into the spool; what a full spool
// evicts is announced in the next gap record.
func (p *Pipeline) addToSpool(e *chunkEntry) {
	lostRecs, lostChunks, carried := p.spool.add(e)
	for reason, n := range carried {
		p.pendingGap[reason] += n // announced again in the next chunk
	}
	if lostChunks > 0 {
		p.pendingGap[GapSpoolFull] += lostRecs
		p.droppedRecs.Add(lostRecs)
		p.droppedChunks.Add(lostChunks)
		p.cfg.Log.Warn("telemetry spool full; dropped the oldest chunks", "chunks", lostChunks, "records", lostRecs, "limitBytes", p.cfg.SpoolBytes)
	}
}

// recoverJournal queues the chunks of a journal file found at start for the
// spool: the complete ones its index lists (not yet spooled) and the lines
// after them as one last chunk. A kill -9 can leave a torn last line
// (written but not fsynced, so never acknowledged): it is left out.
//
// Only the bytes of chunks still to spool are read, and only to count their
// lines, through p.rbuf: a journal file holds up to journalRotate bytes of
// chunks already spooled and, after a clean stop, the open chunk (up to
// ChunkBytes); a buffer of either allocated at every start stays in the
// idle agent's RSS until the runtime returns it (issue 21: with whole
// reads, the A/B's idle RSS was 3 MiB above main's;
// TestRecoverJournalHeapBound).
func (p *Pipeline) recoverJournal(id string, seq uint64) error {
	f, err := os.Open(p.jpath(id))
	if err != nil {
		return fmt.Errorf("telemetry: read journal: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("telemetry: read journal: %w", err)
	}
	end, err := lastLineEnd(f, fi.Size(), p.rbuf[:64<<10])
	if err != nil {
		return fmt.Errorf("telemetry: read journal: %w", err)
	}
	if end != fi.Size() {
		p.cfg.Log.Warn("telemetry journal ends in a torn line; dropping it", "journal", p.jpath(id), "bytes", fi.Size()-end)
	}
	j := &jfile{id: id, size: end}
	type span struct {
		off, end, lines int64
		done, spooled   bool
	}
	spans := map[uint64]*span{}
	var order []uint64
	ix, err := os.ReadFile(p.ipath(id))
	switch {
	case errors.Is(err, os.ErrNotExist): // an older agent's journal: one chunk
		spans[seq] = &span{off: 0}
		order = append(order, seq)
	case err != nil:
		return fmt.Errorf("telemetry: read journal index: %w", err)
	default:
		for _, line := range strings.Split(string(ix), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue // a torn last line
			}
			s, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				continue
			}
			n := func(i int) int64 {
				if i >= len(f) {
					return -1
				}
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					return -1
				}
				return v
			}
			switch f[0] {
			case "open":
				if off := n(2); off >= 0 && spans[s] == nil {
					spans[s] = &span{off: off}
					order = append(order, s)
				}
			case "chunk":
				if sp := spans[s]; sp != nil && n(2) >= sp.off && n(3) >= 0 {
					sp.end, sp.lines, sp.done = n(2), n(3), true
				}
			case "spooled":
				if sp := spans[s]; sp != nil {
					sp.spooled = true
				}
			}
			if s >= p.nextSeq {
				p.nextSeq = s + 1
			}
		}
	}
	covered := int64(0)
	for _, s := range order {
		sp := spans[s]
		if sp.off > end {
			continue // lines never written out
		}
		stop := end
		if sp.done && sp.end <= end {
			stop = sp.end
		}
		covered = max(covered, stop)
		if sp.spooled || stop <= sp.off {
			continue
		}
		lines, err := countLines(f, sp.off, stop, p.rbuf)
		if err != nil {
			return fmt.Errorf("telemetry: read journal: %w", err)
		}
		p.full = append(p.full, doneChunk{seq: s, j: j, off: sp.off, n: stop - sp.off, records: lines})
		j.live++
		p.journaled.Add(lines)
	}
	if covered < end {
		// Lines the index does not place (its last entries were lost): a
		// chunk of their own, numbered once every journal is read.
		lines, err := countLines(f, covered, end, p.rbuf)
		if err != nil {
			return fmt.Errorf("telemetry: read journal: %w", err)
		}
		p.orphans = append(p.orphans, doneChunk{j: j, off: covered, n: end - covered, records: lines})
		j.live++
		p.journaled.Add(lines)
	}
	if j.live == 0 {
		f.Close() // Windows removes no open file
		_ = os.Remove(p.jpath(id))
		_ = os.Remove(p.ipath(id))
	}
	return nil
}

// lastLineEnd returns the offset just after the last newline of f (size
// bytes), reading backwards from the end through buf: a line torn by a
// kill -9 is at most maxLine, one read; a tail a power loss left as zeros
// can be longer (TestRecoverJournalLongTornTail).
func lastLineEnd(f io.ReaderAt, size int64, buf []byte) (int64, error) {
	for stop := size; stop > 0; {
		start := max(stop-int64(len(buf)), 0)
		n, err := f.ReadAt(buf[:stop-start], start)
		if n < int(stop-start) {
			// Fewer bytes than Stat said: the file shrank under us.
			return 0, fmt.Errorf("short read at %d: %w", start, cmp.Or(err, io.ErrUnexpectedEOF))
		}
		b := buf[:n]
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		stop = start
	}
	return 0, nil
}

// countLines counts the lines of f in [off, stop) through buf: the chunk's
// record count, without holding the chunk (up to ChunkBytes) in the heap.
func countLines(f io.ReaderAt, off, stop int64, buf []byte) (int64, error) {
	var lines int64
	for off < stop {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), stop-off)], off)
		lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		off += int64(n)
		if off < stop && err != nil {
			return 0, fmt.Errorf("short read at %d: %w", off, cmp.Or(err, io.ErrUnexpectedEOF))
		}
	}
	return lines, nil
}
