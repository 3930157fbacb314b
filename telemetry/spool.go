package telemetry

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// A spooled chunk file is named <chunkId>.<records>.ndjson.gz where chunkId is
// <instance>-<seq, 20 digits>. Keeping the record count in the name lets the
// spool report how many records a dropped chunk held without opening it.
const chunkSuffix = ".ndjson.gz"

type chunkEntry struct {
	id      string
	seq     uint64
	records int64
	size    int64
	leased  bool // the uploader is sending it; never evicted while leased
}

func (e *chunkEntry) name() string {
	return e.id + "." + strconv.FormatInt(e.records, 10) + chunkSuffix
}

// parseChunkName reads <instance>-<seq>.<records>.ndjson.gz.
func parseChunkName(name string) (id string, seq uint64, records int64, ok bool) {
	base, found := strings.CutSuffix(name, chunkSuffix)
	if !found {
		return "", 0, 0, false
	}
	dot := strings.LastIndexByte(base, '.')
	if dot < 0 {
		return "", 0, 0, false
	}
	id = base[:dot]
	records, err := strconv.ParseInt(base[dot+1:], 10, 64)
	if err != nil || records < 0 {
		return "", 0, 0, false
	}
	seq, ok = parseChunkSeq(id)
	return id, seq, records, ok
}

func parseChunkSeq(id string) (uint64, bool) {
	dash := strings.LastIndexByte(id, '-')
	if dash < 0 {
		return 0, false
	}
	seq, err := strconv.ParseUint(id[dash+1:], 10, 64)
	return seq, err == nil
}

func formatChunkID(instance string, seq uint64) string {
	return fmt.Sprintf("%s-%020d", instance, seq)
}

// spool is the on-disk queue of closed chunks, oldest first, bounded in bytes.
type spool struct {
	dir   string
	limit int64

	mu      sync.Mutex
	entries []*chunkEntry // sorted by seq
	total   int64
}

// load scans dir for chunk files (after a restart) and removes stray temp files.
func (s *spool) load() error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read telemetry spool %s: %w", s.dir, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".tmp") {
			_ = os.Remove(filepath.Join(s.dir, de.Name()))
			continue
		}
		id, seq, n, ok := parseChunkName(de.Name())
		if !ok {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		s.entries = append(s.entries, &chunkEntry{id: id, seq: seq, records: n, size: fi.Size()})
		s.total += fi.Size()
	}
	sort.Slice(s.entries, func(i, j int) bool { return s.entries[i].seq < s.entries[j].seq })
	return nil
}

func (s *spool) maxSeq() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) == 0 {
		return 0, false
	}
	return s.entries[len(s.entries)-1].seq, true
}

// add registers a chunk file already renamed into the spool and evicts the
// oldest unleased chunks while the spool is over its limit. It returns what
// was evicted so the caller can write a gap record: the records lost (gap
// lines not counted: they are not records) and, by reason, the losses the
// evicted chunks' gap records announced, which the caller announces again —
// a gap record is never lost with the chunk that held it.
func (s *spool) add(e *chunkEntry) (lostRecords, lostChunks int64, carried map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
	s.total += e.size
	for s.total > s.limit {
		i := 0
		for i < len(s.entries)-1 && s.entries[i].leased {
			i++
		}
		if i >= len(s.entries)-1 { // never evict the chunk just added
			break
		}
		old := s.entries[i]
		path := filepath.Join(s.dir, old.name())
		gapLines, gaps, gerr := gapsIn(path)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			break
		}
		s.entries = append(s.entries[:i], s.entries[i+1:]...)
		s.total -= old.size
		lostChunks++
		if gerr != nil {
			// Unreadable: every line counts as lost, as before.
			lostRecords += old.records
			continue
		}
		lostRecords += old.records - gapLines
		for reason, n := range gaps {
			if carried == nil {
				carried = map[string]int64{}
			}
			carried[reason] += n
		}
	}
	return lostRecords, lostChunks, carried
}

// gapsIn reads a spooled chunk's gap records: how many lines they are and the
// losses they announce by reason.
func gapsIn(path string) (lines int64, lost map[string]int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, nil, err
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine+1)
	marker := []byte(`"` + ActionTelemetryGap + `"`)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, marker) {
			continue
		}
		var g struct {
			ActionType  string
			LostRecords int64
			GapReason   string
		}
		if json.Unmarshal(line, &g) != nil || g.ActionType != ActionTelemetryGap {
			continue
		}
		if lost == nil {
			lost = map[string]int64{}
		}
		lines++
		lost[g.GapReason] += g.LostRecords
	}
	return lines, lost, sc.Err()
}

// insert registers a chunk moved back into the spool (from quarantine) at
// its place in upload order. Nothing is evicted for it.
func (s *spool) insert(e *chunkEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.entries), func(i int) bool { return s.entries[i].seq >= e.seq })
	if i < len(s.entries) && s.entries[i].id == e.id {
		return
	}
	s.entries = slices.Insert(s.entries, i, e)
	s.total += e.size
}

// lease returns the oldest chunk and marks it as being uploaded.
func (s *spool) lease() (*chunkEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) == 0 {
		return nil, false
	}
	e := s.entries[0]
	e.leased = true
	c := *e
	return &c, true
}

func (s *spool) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.id == id {
			e.leased = false
		}
	}
}

// remove forgets the chunk and deletes its file (after a 2xx), or moves it to
// moveTo (quarantine) when moveTo is not empty.
func (s *spool) remove(id, moveTo string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.entries {
		if e.id != id {
			continue
		}
		path := filepath.Join(s.dir, e.name())
		var err error
		if moveTo != "" {
			err = os.Rename(path, filepath.Join(moveTo, e.name()))
		} else {
			err = os.Remove(path)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove spooled chunk %s: %w", id, err)
		}
		s.entries = append(s.entries[:i], s.entries[i+1:]...)
		s.total -= e.size
		return nil
	}
	return nil
}

func (s *spool) stats() (chunks int, bytes, records int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		records += e.records
	}
	return len(s.entries), s.total, records
}

// syncDir makes a rename or create in dir durable (fsync of the directory).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" { // NTFS metadata is journaled; directories cannot be fsynced
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// fsyncEach fsyncs each file; files already removed (a chunk uploaded
// meanwhile) are skipped.
func fsyncEach(paths []string) error {
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
