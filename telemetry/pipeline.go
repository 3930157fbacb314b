package telemetry

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Config configures a Pipeline. Zero values take the defaults of CONTRACT §6.
type Config struct {
	// Dir holds the journal, the spool and the quarantine. Required.
	Dir string
	// DeviceID names the device in upload URLs. Required when Endpoint is set.
	// When set, it overwrites every record's DeviceId (the collector checks
	// that they match). DeviceName, when set, overwrites DeviceName.
	DeviceID   string
	DeviceName string
	// Endpoint is the console base URL ("https://console.example"); empty
	// means records are chunked and spooled but not uploaded.
	Endpoint string
	// Token is sent as "Authorization: Bearer <Token>".
	Token string

	ChunkBytes    int64         // default 4 MiB of uncompressed NDJSON
	ChunkRecords  int           // default 4000
	ChunkInterval time.Duration // default 1h after the chunk's first record
	SpoolBytes    int64         // default 256 MiB of compressed chunks

	// QueueRecords bounds the in-memory queue between producers and the
	// writer (default 8192, ≈1.9 MB of packed records; the writer holds the
	// batch it took besides). Add refuses and counts records past it.
	QueueRecords int
	// CommitInterval is the group-commit period: the journal is fsynced at
	// least this often while records arrive (default 200ms, at most 1s).
	CommitInterval time.Duration

	Privacy Privacy
	// Salt keys the pseudonyms of PrivacyPseudonymous (per tenant).
	Salt []byte

	// Client sends uploads; default verifies TLS with the system roots.
	Client *http.Client
	// RetryBase and RetryMax bound the exponential backoff (defaults 1s, 5m).
	RetryBase, RetryMax time.Duration

	// Drain, if set, hands add the records a producer holds back (the DNS
	// answers of the agent's deduplication window), one at a time,
	// emptying its window. The writer calls it before every chunk close and
	// at a clean stop, so a chunk carries every transaction of its time and
	// a stop loses none: the records go into the closing chunk while it has
	// room, the rest into the next. One at a time, not as a slice: a full
	// window as a slice of records was 3–4 MB of the agent's heap at every
	// chunk close under load (issue 21).
	Drain func(add func(Record))

	Log *slog.Logger
	Now func() time.Time
	// Rand returns a uniformly random int64 in [0, n) for backoff jitter.
	Rand func(n int64) int64

	// sleep waits between upload attempts; tests record the delays.
	sleep func(ctx context.Context, d time.Duration) error
}

func (c *Config) setDefaults() {
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 4 << 20
	}
	if c.ChunkRecords <= 0 {
		c.ChunkRecords = 4000
	}
	if c.ChunkInterval <= 0 {
		c.ChunkInterval = time.Hour
	}
	if c.SpoolBytes <= 0 {
		c.SpoolBytes = 256 << 20
	}
	if c.QueueRecords <= 0 {
		c.QueueRecords = defaultQueueRecords
	}
	if c.CommitInterval <= 0 || c.CommitInterval > time.Second {
		c.CommitInterval = 200 * time.Millisecond
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 2 * time.Minute}
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.Rand == nil {
		c.Rand = randInt63n
	}
}

// Status is what `netward status` shows about telemetry (as
// control.TelemetryStatus, whose JSON names are the stable ones).
type Status struct {
	// DeviceID is the id in every record and upload path (device.id
	// resolved: "auto" never shows here).
	DeviceID       string
	Endpoint       string
	SpoolChunks    int
	SpoolBytes     int64
	SpoolRecords   int64
	OpenRecords    int64
	QueuedRecords  int
	UploadedChunks int64
	LastUpload     time.Time
	LastError      string
	Quarantined    int
	QuarantinedIDs []string
	// DroppedQueueFull counts records refused by Add because the queue was full.
	DroppedQueueFull int64
	// DroppedSpoolRecords/Chunks count records and chunks evicted from a full spool.
	DroppedSpoolRecords int64
	DroppedSpoolChunks  int64
}

// Pipeline turns records into durable, gzip-compressed chunks and uploads
// them in order. Add is safe for concurrent use and never blocks on disk.
type Pipeline struct {
	cfg   Config
	spool spool
	qdir  string // quarantine
	jdir  string // journal

	// Producer side: a bounded queue swapped out whole by the writer.
	mu      sync.Mutex
	queue   []Packed
	spare   []Packed
	refused int64 // since the last commit, for the gap record
	waiters []chan struct{}
	// room, made by a WaitRoom that waits, is closed when a commit takes
	// the queue.
	room     chan struct{}
	wake     chan struct{}
	spoolSig chan struct{}

	// Writer-owned state.
	instance string
	nextSeq  uint64
	seqLimit uint64 // sequence numbers below it are reserved in the seq file
	// cur is the journal file written to, open the chunk being written
	// (journal.go); full the complete chunks not yet compressed into the
	// spool; dirty the journal files written since the last fsync, and
	// newJournal says a file was created since (its directory entry needs
	// the directory's fsync too); orphans are recovered lines the index
	// does not place, numbered once every journal is read.
	cur        *jfile
	open       *openChunk
	full       []doneChunk
	orphans    []doneChunk
	dirty      []*jfile
	newJournal bool
	bw         *bufio.Writer // writes the current journal file
	pendingGap map[string]int64
	// failing counts the commits failed in a row; failLogged is when that
	// was last logged (commitDone).
	failing    int
	failLogged time.Time
	// carry holds drained records (Config.Drain) that did not fit the
	// chunk they were drained for; written first into the next.
	carry []Packed
	line  []byte
	ps    *pseudonymizer
	gz    *gzip.Writer
	// rbuf carries a chunk from its journal into gz (compress): one buffer
	// for the pipeline's life, not io.Copy's 32 KiB at every chunk, and
	// large enough that a 1 MiB chunk is a few reads.
	rbuf []byte
	// rotateAt is the journal size from which the next chunk starts a new
	// file (journalRotate; tests lower it to cover rotation).
	rotateAt int64

	// Status counters.
	droppedQueue  atomic.Int64
	droppedRecs   atomic.Int64
	droppedChunks atomic.Int64
	uploaded      atomic.Int64
	// inflight counts records taken from the queue by a commit and not yet
	// in a journal; journaled the lines in journals (the open one and the
	// complete ones not yet spooled). Status reads queue+inflight, then
	// journaled, then the spool: records move in that order, so a record is
	// never missed (at worst counted twice for an instant).
	inflight       atomic.Int64
	carried        atomic.Int64 // len(carry): drained, not yet journaled
	journaled      atomic.Int64
	lastUpload     atomic.Int64 // unix nanos
	statusMu       sync.Mutex
	lastError      string
	quarantinedIDs []string
	quarantined    int
}

// defaultQueueRecords is Config.QueueRecords' default. The queue fills only
// when producers outrun the writer, and then a larger queue drops the same
// records a little later: what it bounds is memory. Under a flood of
// blocked DNS names (dnsperf, ~160,000 events a second on two shared
// cores) the queue grew to its bound of 16,384 records: with the batch the
// writer took, ~450 bytes a record, 11 MB of the agent's live heap, its
// largest item, which the collector's pacing then doubles (issue 21,
// docs/dns.md "Seventh part"; records are queued packed now, 232 bytes
// each: "Tenth part"). Bursts that the writer can absorb are
// smaller: it is woken at a quarter of the queue, and the DNS answers
// window, the one producer of large bursts, hands its records over 1,024
// at a time (WaitRoom).
const defaultQueueRecords = 8192

// queueMin is the capacity the queue starts with; it grows as producers
// need, up to Config.QueueRecords, and shrinks back after a burst (commit).
const queueMin = 1024

// New checks cfg and returns a pipeline that has not touched the disk yet.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Dir == "" {
		return nil, errors.New("telemetry: Config.Dir is empty; set the agent's dataDir")
	}
	if cfg.Endpoint != "" {
		if cfg.DeviceID == "" {
			return nil, errors.New("telemetry: an upload endpoint needs a device id")
		}
		if !strings.HasPrefix(cfg.Endpoint, "https://") && !strings.HasPrefix(cfg.Endpoint, "http://") {
			return nil, fmt.Errorf("telemetry: endpoint %q is not an http(s) URL", cfg.Endpoint)
		}
		if !validID(cfg.DeviceID) {
			return nil, fmt.Errorf("telemetry: device id %q may only use letters, digits, '.', '_' and '-' (at most 128)", cfg.DeviceID)
		}
	}
	cfg.setDefaults()
	p := &Pipeline{
		cfg:        cfg,
		spool:      spool{dir: filepath.Join(cfg.Dir, "spool"), limit: cfg.SpoolBytes},
		qdir:       filepath.Join(cfg.Dir, "quarantine"),
		jdir:       filepath.Join(cfg.Dir, "journal"),
		wake:       make(chan struct{}, 1),
		spoolSig:   make(chan struct{}, 1),
		pendingGap: make(map[string]int64),
		ps:         newPseudonymizer(cfg.Salt),
	}
	p.gz, _ = gzip.NewWriterLevel(io.Discard, spoolLevel)
	p.rbuf = make([]byte, 256<<10)
	p.rotateAt = journalRotate
	p.bw = bufio.NewWriterSize(io.Discard, 64<<10)
	return p, nil
}

// Add queues r for the journal. It never blocks on disk: it returns false,
// and counts the record for a gap record, when the queue is full. A record
// that Add accepted is durable within CommitInterval (see Flush).
func (p *Pipeline) Add(r Record) bool {
	pk := Pack(&r)
	return p.AddPacked(&pk)
}

// AddPacked is Add for a record already packed (it copies *pk): a caller
// that packs a record once for several consumers (the agent's sinks).
func (p *Pipeline) AddPacked(pk *Packed) bool {
	p.mu.Lock()
	if len(p.queue) >= p.cfg.QueueRecords {
		p.refused++
		p.mu.Unlock()
		p.droppedQueue.Add(1)
		return false
	}
	if len(p.queue) == cap(p.queue) {
		// Grown by doubling up to the bound, never past it (append's
		// growth would: the bound is there for the memory).
		q := make([]Packed, len(p.queue), min(max(2*cap(p.queue), queueMin), p.cfg.QueueRecords))
		copy(q, p.queue)
		p.queue = q
	}
	p.queue = append(p.queue, *pk)
	n := len(p.queue)
	p.mu.Unlock()
	if n == p.cfg.QueueRecords/4 { // commit early under load, before the queue fills
		p.signal()
	}
	return true
}

// WaitRoom waits, while the queue holds n records or more, for the writer
// to take them (it is woken at once), until stop is closed, or at most
// maxRoomWait. A producer that emits records in bursts — the DNS
// deduplication window emits up to 8,192 when it fills — calls it between
// portions of a burst, so the burst reaches the writer a portion at a time
// instead of queueing whole: records of ~500 bytes queued by the thousand
// were the biggest share of the agent's heap under a flood of new names,
// which the collector then doubles (issue 21). Add itself never blocks.
func (p *Pipeline) WaitRoom(stop <-chan struct{}, n int) {
	var timeout <-chan time.Time
	for {
		p.mu.Lock()
		if len(p.queue) < n {
			p.mu.Unlock()
			return
		}
		if p.room == nil {
			p.room = make(chan struct{})
		}
		room := p.room
		p.mu.Unlock()
		p.signal()
		if timeout == nil {
			// Bounded: a writer that stopped (or is stuck on a disk
			// error) must not stop the producer for good; Add then
			// counts what does not fit, as without WaitRoom.
			t := time.NewTimer(maxRoomWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-room:
		case <-stop:
			return
		case <-timeout:
			return
		}
	}
}

// maxRoomWait bounds one WaitRoom: a few commit intervals.
const maxRoomWait = time.Second

func (p *Pipeline) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every record added before the call is fsynced in the
// journal, or ctx ends. Run must be running.
func (p *Pipeline) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	p.mu.Lock()
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	p.signal()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status reports spool depth, uploads and losses.
func (p *Pipeline) Status() Status {
	// Queue (and in flight), then journals, then spool: the order records
	// move in, so none is missed between two reads.
	p.mu.Lock()
	queued := len(p.queue) + int(p.inflight.Load())
	p.mu.Unlock()
	queued += int(p.carried.Load())
	journaled := p.journaled.Load()
	chunks, bytes, records := p.spool.stats()
	s := Status{
		DeviceID:            p.cfg.DeviceID,
		Endpoint:            p.cfg.Endpoint,
		SpoolChunks:         chunks,
		SpoolBytes:          bytes,
		SpoolRecords:        records,
		OpenRecords:         journaled,
		QueuedRecords:       queued,
		UploadedChunks:      p.uploaded.Load(),
		DroppedQueueFull:    p.droppedQueue.Load(),
		DroppedSpoolRecords: p.droppedRecs.Load(),
		DroppedSpoolChunks:  p.droppedChunks.Load(),
	}
	if t := p.lastUpload.Load(); t != 0 {
		s.LastUpload = time.Unix(0, t).UTC()
	}
	p.statusMu.Lock()
	s.LastError = p.lastError
	s.Quarantined = p.quarantined
	s.QuarantinedIDs = append([]string(nil), p.quarantinedIDs...)
	p.statusMu.Unlock()
	return s
}

// Run recovers the journal and spool left by a previous run, then writes and
// uploads until ctx ends. On return every accepted record is fsynced.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.recover(); err != nil {
		return err
	}
	upCtx, cancelUp := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if p.cfg.Endpoint != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.uploadLoop(upCtx)
		}()
	}
	err := p.writeLoop(ctx)
	cancelUp()
	wg.Wait()
	return err
}

func (p *Pipeline) recover() error {
	for _, d := range []string{p.cfg.Dir, p.spool.dir, p.qdir, p.jdir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("telemetry: create %s: %w (check dataDir permissions)", d, err)
		}
	}
	inst, err := os.ReadFile(filepath.Join(p.cfg.Dir, "instance"))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("telemetry: %w", err)
		}
		// The instance id keeps chunk ids unique for this device even if the
		// data directory is wiped and the sequence starts again.
		var b [8]byte
		_, _ = rand.Read(b[:])
		inst = []byte(hex.EncodeToString(b[:]))
		if err := writeFileSync(filepath.Join(p.cfg.Dir, "instance"), inst); err != nil {
			return err
		}
	}
	p.instance = strings.TrimSpace(string(inst))
	if !validID(p.instance) {
		return fmt.Errorf("telemetry: %s is corrupt; delete it to start a new chunk sequence", filepath.Join(p.cfg.Dir, "instance"))
	}
	if b, err := os.ReadFile(filepath.Join(p.cfg.Dir, "seq")); err == nil {
		p.nextSeq, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	if err := p.spool.load(); err != nil {
		return err
	}
	if s, ok := p.spool.maxSeq(); ok && s >= p.nextSeq {
		p.nextSeq = s + 1
	}
	if err := p.requeueOnNewIdentity(); err != nil {
		return err
	}
	if des, err := os.ReadDir(p.qdir); err == nil {
		for _, de := range des {
			if id, seq, _, ok := parseChunkName(de.Name()); ok {
				p.statusMu.Lock() // Status may be read while Run recovers
				p.quarantined++
				p.noteQuarantine(id)
				p.statusMu.Unlock()
				if seq >= p.nextSeq {
					p.nextSeq = seq + 1
				}
			}
		}
	}
	// A journal left behind (crash or clean stop) becomes a closed chunk now.
	des, err := os.ReadDir(p.jdir)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), ".ndjson")
		seq, ok2 := parseChunkSeq(id)
		if !ok || !ok2 {
			continue
		}
		if seq >= p.nextSeq {
			p.nextSeq = seq + 1
		}
		if err := p.recoverJournal(id, seq); err != nil {
			return err
		}
	}
	p.seqLimit = p.nextSeq
	for _, o := range p.orphans {
		if o.seq, err = p.reserveSeq(); err != nil {
			return err
		}
		p.full = append(p.full, o)
	}
	p.orphans = nil
	return p.spoolFull(0)
}

// identityFile keeps a digest of the endpoint and token chunks were last
// uploaded with.
const identityFile = "upload-identity"

// requeueOnNewIdentity puts quarantined chunks back in the spool when the
// endpoint or the token changed since the last run (or was never recorded):
// a chunk refused under a wrong token or by the wrong console is not a bad
// chunk, and the new one may take it.
func (p *Pipeline) requeueOnNewIdentity() error {
	if p.cfg.Endpoint == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(p.cfg.Endpoint + "\n" + p.cfg.Token))
	id := hex.EncodeToString(sum[:16])
	path := filepath.Join(p.cfg.Dir, identityFile)
	old, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(old)) == id {
		return nil
	}
	n, err := p.moveQuarantined()
	if err != nil {
		return err
	}
	if n > 0 {
		p.cfg.Log.Info("telemetry endpoint or token changed: quarantined chunks queued for upload again", "chunks", n)
	}
	return writeFileSync(path, []byte(id+"\n"))
}

// Requeue moves every quarantined chunk back into the spool, to be uploaded
// again in order (`netward telemetry requeue`, admin). It returns how many.
func (p *Pipeline) Requeue() (int, error) {
	n, err := p.moveQuarantined()
	if n > 0 {
		p.cfg.Log.Info("quarantined telemetry chunks queued for upload again", "chunks", n)
		select {
		case p.spoolSig <- struct{}{}:
		default:
		}
	}
	return n, err
}

// moveQuarantined renames the quarantined chunks into the spool.
func (p *Pipeline) moveQuarantined() (int, error) {
	des, err := os.ReadDir(p.qdir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("telemetry: %w", err)
	}
	n := 0
	for _, de := range des {
		id, seq, records, ok := parseChunkName(de.Name())
		if !ok {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if err := os.Rename(filepath.Join(p.qdir, de.Name()), filepath.Join(p.spool.dir, de.Name())); err != nil {
			return n, fmt.Errorf("telemetry: requeue chunk %s: %w", id, err)
		}
		p.spool.insert(&chunkEntry{id: id, seq: seq, records: records, size: fi.Size()})
		n++
	}
	if n > 0 {
		if err := syncDir(p.spool.dir); err != nil {
			return n, fmt.Errorf("telemetry: %w", err)
		}
		p.statusMu.Lock()
		p.quarantined = max(p.quarantined-n, 0)
		p.quarantinedIDs = nil
		p.statusMu.Unlock()
	}
	return n, nil
}

func (p *Pipeline) writeLoop(ctx context.Context) error {
	t := time.NewTicker(p.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Clean stop: everything accepted so far reaches the disk. The
			// open journal stays and becomes a chunk at the next start.
			if p.cfg.Drain != nil {
				p.cfg.Drain(func(r Record) { p.carry = append(p.carry, Pack(&r)) })
				p.carried.Store(int64(len(p.carry)))
			}
			err := p.commit(true)
			if cerr := p.closeCur(); err == nil {
				err = cerr
			}
			p.open = nil
			p.journaled.Store(0) // what is left is read again at the next start
			return err
		case <-p.wake:
			if p.failing > 0 {
				// The disk failed the last commit: retry at the tick, not
				// at every wake (WaitRoom wakes the writer again as soon
				// as a failed commit takes the queue, which spun).
				continue
			}
			// Producers filled a quarter of the queue (or Flush asked):
			// journal the batch now to keep memory bounded; fsync only if
			// someone waits for durability — the ticker fsyncs the rest.
			p.commitDone(p.commit(false))
			continue
		case <-t.C:
		}
		p.commitDone(p.commit(true))
	}
}

// commitDone records a commit's outcome, logging a failing disk once when
// it starts failing, then at most once per errLogInterval with the count of
// failed retries, and once when it works again — not at every retry.
func (p *Pipeline) commitDone(err error) {
	now := time.Now()
	if err == nil {
		if p.failing > 0 {
			p.cfg.Log.Info("telemetry journal writes work again", "failedCommits", p.failing)
			p.failing = 0
		}
		return
	}
	p.setError(err)
	p.failing++
	if p.failing == 1 || now.Sub(p.failLogged) >= errLogInterval {
		p.failLogged = now
		p.cfg.Log.Error("telemetry journal write failed; records are kept in memory (up to the queue bound, the rest counted in a gap record) and retried at each commit interval; free disk space or fix the data directory",
			"err", err, "failedCommits", p.failing)
	}
}

// errLogInterval bounds how often a failing disk is logged.
const errLogInterval = time.Minute

// commit moves the queue into the journals, makes them durable (one group
// fsync), compresses the complete chunks into the spool, and wakes Flush
// callers.
//
// The whole batch reaches the journals first — write(2) only, for any chunk
// size — so a kill -9 loses no record the writer has taken, and a sync makes
// all of them durable at once; only then are complete chunks compressed and
// spooled, with their fsyncs grouped too. (Closing each small chunk with its
// own fsyncs before writing the next held most of a burst in memory for
// seconds: issue 20 #3.)
//
// sync=false skips the fsync unless a Flush caller is waiting; the periodic
// commit always fsyncs, which bounds what a power loss can lose.
// takeQueue takes the queue for the writer (commit), with the count of
// records refused since the last take and the Flush callers waiting, and
// wakes the producers waiting for room (WaitRoom).
func (p *Pipeline) takeQueue() (batch []Packed, refused int64, waiters []chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	batch = p.queue
	p.queue = p.spare[:0]
	p.spare = nil
	p.inflight.Store(int64(len(batch)))
	refused, p.refused = p.refused, 0
	waiters, p.waiters = p.waiters, nil
	if p.room != nil {
		close(p.room) // the queue is empty again
		p.room = nil
	}
	return batch, refused, waiters
}

func (p *Pipeline) commit(sync bool) error {
	batch, refused, waiters := p.takeQueue()

	if refused > 0 {
		p.pendingGap[GapQueueFull] += refused
	}
	written, err := p.writeBatch(batch)
	if err == nil {
		err = p.writeCarry()
	}
	if err == nil && p.open != nil && p.cfg.Now().Sub(p.open.first) >= p.cfg.ChunkInterval {
		err = p.completeChunk()
	}
	if err == nil {
		// Again after the age close: what its drain could not fit goes
		// into the next chunk now, so a commit leaves nothing in carry (a
		// clean stop's last commit would otherwise lose it).
		err = p.writeCarry()
	}
	if err == nil {
		err = p.writeGaps()
	}
	if err == nil {
		err = p.flushJournal() // out of this process: a kill -9 cannot lose it
	}
	if err == nil && (sync || len(waiters) > 0) {
		err = p.syncJournals()
	}
	if err == nil {
		err = p.spoolFull(p.cfg.CommitInterval / 2)
	}
	if err == nil {
		// Gap records for what a full spool evicted, at the head of the
		// next chunk.
		err = p.writeGaps()
		if err == nil {
			err = p.flushJournal()
		}
	}
	if err != nil {
		p.putBack(batch, written, waiters)
		return err
	}
	n := len(batch)
	clear(batch)
	if cap(batch) > queueMin && n < cap(batch)/4 {
		// A buffer grown for a burst is let go once the burst is over:
		// at up to QueueRecords records of ~450 bytes, two of them held
		// for ever were up to 14 MB of an idle agent (issue 21; ~3.8 MB
		// packed).
		batch = nil
	}
	p.mu.Lock()
	p.spare = batch[:0]
	p.inflight.Store(0)
	p.mu.Unlock()
	for _, w := range waiters {
		close(w)
	}
	return nil
}

// putBack returns the records a failed commit did not write to the head of
// the queue, so a transient disk error loses nothing accepted — within the
// bound: producers refilled the queue while the writer held the batch, and
// putting both back whole let the queue grow by up to a bound at each
// failed retry (2, 3, 4... times the bound during an ENOSPC, when memory
// matters most). The oldest records are kept first (the failed batch, then
// the queue's); the newest that do not fit are counted as refused, so the
// next written commit's gap record (GapQueueFull) says how many were lost.
func (p *Pipeline) putBack(batch []Packed, written int, waiters []chan struct{}) {
	// The unwritten records move to the start of the batch's buffer, which
	// Add never grew past the bound; the written ones are let go.
	n := copy(batch, batch[written:])
	clear(batch[n:])
	rest := batch[:n]
	p.mu.Lock()
	defer p.mu.Unlock()
	queued := p.queue
	keep := min(len(rest)+len(queued), p.cfg.QueueRecords)
	if len(rest) > keep { // only if the bound was lowered; not in practice
		p.refused += int64(len(rest) - keep)
		p.droppedQueue.Add(int64(len(rest) - keep))
		clear(rest[keep:])
		rest = rest[:keep]
	}
	fit := keep - len(rest) // of the records queued meanwhile
	q := rest
	if cap(q) < keep {
		q = make([]Packed, len(rest), keep)
		copy(q, rest)
	}
	q = append(q, queued[:fit]...)
	if lost := int64(len(queued) - fit); lost > 0 {
		p.refused += lost
		p.droppedQueue.Add(lost)
	}
	clear(queued)
	p.spare = queued[:0]
	p.queue = q
	p.inflight.Store(0)
	p.waiters = append(waiters, p.waiters...)
}

// writeBatch journals batch and returns how many records it wrote.
func (p *Pipeline) writeBatch(batch []Packed) (int, error) {
	for i := range batch {
		if err := p.writeRecord(batch[i].Record()); err != nil {
			return i, err
		}
		p.inflight.Add(-1) // journaled now (counted there)
	}
	return len(batch), nil
}

// encode stamps r (device identity, a valid time, privacy) and encodes it
// as one NDJSON line into p.line.
func (p *Pipeline) encode(r *Record) []byte {
	if p.cfg.DeviceID != "" {
		r.DeviceId = p.cfg.DeviceID
	}
	if p.cfg.DeviceName != "" {
		r.DeviceName = p.cfg.DeviceName
	}
	if y := r.Timestamp.Year(); y < 1 || y > 9999 {
		// RFC 3339 has four-digit years; a collector would refuse the whole
		// chunk, so an unset or absurd timestamp becomes the commit time.
		r.Timestamp = p.cfg.Now()
	}
	applyPrivacy(r, p.cfg.Privacy, p.ps)
	p.line = append(AppendJSON(p.line[:0], r), '\n')
	if len(p.line) > maxLine {
		// A collector refuses lines over 64 KiB, and with them the whole
		// chunk: shorten absurd fields instead of losing their neighbours.
		clampRecord(r)
		p.line = append(AppendJSON(p.line[:0], r), '\n')
	}
	return p.line
}

func (p *Pipeline) writeRecord(rec Record) error {
	r := &rec
	p.encode(r)
	if p.open != nil && p.open.records > 0 && p.open.bytes+int64(len(p.line)) > p.cfg.ChunkBytes {
		if err := p.completeChunk(); err != nil {
			return err
		}
		if err := p.writeGaps(); err != nil {
			return err
		}
		p.line = append(AppendJSON(p.line[:0], r), '\n')
	}
	if err := p.appendLine(p.line); err != nil {
		return err
	}
	if p.open.records >= int64(p.cfg.ChunkRecords) {
		return p.completeChunk()
	}
	return nil
}

// writeGaps appends one gap record per reason with losses not yet reported.
func (p *Pipeline) writeGaps() error {
	for _, reason := range []string{GapSpoolFull, GapQueueFull} {
		n := p.pendingGap[reason]
		if n == 0 {
			continue
		}
		g := Record{Timestamp: p.cfg.Now().UTC(), DeviceId: p.cfg.DeviceID, ActionType: ActionTelemetryGap, LostRecords: n, GapReason: reason}
		p.line = append(AppendJSON(p.line[:0], &g), '\n')
		if err := p.appendLine(p.line); err != nil {
			return err
		}
		delete(p.pendingGap, reason)
	}
	return nil
}

// drainInto writes the producer's held-back records (Config.Drain) into
// the open chunk while it has room and keeps the rest in carry, written
// after the close into the next chunk.
func (p *Pipeline) drainInto() error {
	if p.cfg.Drain == nil {
		return nil
	}
	var err error
	p.cfg.Drain(func(r Record) {
		if err != nil || p.open.records >= int64(p.cfg.ChunkRecords) {
			// Drained from the producer: after a write error the rest
			// waits in carry too, never lost.
			p.carry = append(p.carry, Pack(&r))
			return
		}
		// encode stamps and pseudonymizes in place: a copy, so a record
		// kept in carry is encoded once, from the original, later.
		enc := r
		line := p.encode(&enc)
		if p.open.bytes+int64(len(line)) > p.cfg.ChunkBytes {
			p.carry = append(p.carry, Pack(&r))
			return
		}
		if err = p.appendLine(line); err != nil {
			p.carry = append(p.carry, Pack(&r))
		}
	})
	p.carried.Store(int64(len(p.carry)))
	return err
}

// writeCarry writes the drained records that did not fit the chunk they
// were drained for.
func (p *Pipeline) writeCarry() error {
	for len(p.carry) > 0 {
		if err := p.writeRecord(p.carry[0].Record()); err != nil {
			return err
		}
		p.carry = p.carry[1:]
		p.carried.Store(int64(len(p.carry)))
	}
	p.carry = nil
	return nil
}

func (p *Pipeline) setError(err error) {
	p.statusMu.Lock()
	p.lastError = err.Error()
	p.statusMu.Unlock()
}

func (p *Pipeline) noteQuarantine(id string) {
	p.quarantinedIDs = append(p.quarantinedIDs, id)
	if len(p.quarantinedIDs) > 10 { // status shows the latest few
		p.quarantinedIDs = p.quarantinedIDs[1:]
	}
}

// writeFileSync replaces path atomically and durably.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("telemetry: write %s: %w", path, err)
	}
	return nil
}

// validID reports whether s is safe as a URL path segment and file name.
func validID(s string) bool {
	if s == "" || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// maxLine is the longest NDJSON line the pipeline writes (well under the
// collector's 64 KiB default).
const maxLine = 16 << 10

// clampRecord cuts every string field to 1 KiB.
func clampRecord(r *Record) {
	for _, f := range []*string{&r.DeviceId, &r.DeviceName, &r.ActionType, &r.RemoteIP, &r.RemoteUrl, &r.LocalIP,
		&r.Protocol, &r.InitiatingProcessFileName, &r.InitiatingProcessAccountName, &r.IndicatorId, &r.Application,
		&r.Source, &r.GapReason, &r.PolicyVersion} {
		if len(*f) > 1024 {
			*f = (*f)[:1024]
		}
	}
}
