// Package ingest takes the agents' telemetry chunks (CONTRACT §6): it
// checks the device's token against the upload path, keeps the raw gzip
// NDJSON under the data directory, and adds the chunk's aggregates to the
// store in one transaction, once per chunk id. Chunks of one device are
// taken in order; different devices proceed in parallel, with the memory
// that concurrent decompression may use bounded (past it: 503 with
// Retry-After, which the agent's uploader honours).
package ingest

import (
	"bufio"
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/klauspost/compress/gzip"
	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/store"
	"github.com/netward/netward/telemetry"
)

// Matcher names the catalog app of a host.
type Matcher interface {
	Match(host string) (catalog.App, bool)
}

// Config configures the Ingest.
type Config struct {
	Store *store.Store
	Auth  *auth.Service
	// Matcher returns the current app matcher (custom apps change it).
	Matcher func() Matcher
	// Dir keeps raw chunks as <date>/<device>/<chunk>.ndjson.gz.
	Dir string
	// MaxCompressed bounds a request body (default 8 MiB); MaxDecompressed
	// the NDJSON inside (default 64 MiB; an agent closes chunks at 4 MiB);
	// MaxLine one record (default 64 KiB); MaxRecords the lines of a chunk
	// (default 200,000). Past any of them: 413.
	MaxCompressed, MaxDecompressed int64
	MaxLine, MaxRecords            int
	// MemoryBudget bounds the bytes that uploads being processed may hold at
	// once (default 64 MiB): each upload is charged a working set, its body
	// block by block as it arrives, and its aggregates as they grow; one
	// upload per device at a time. It is raised to at least one upload's
	// worst case (MaxCompressed + 33.25 MiB). An upload that cannot be admitted within AdmitWait (default
	// 2 s) gets 503 with Retry-After of RetryAfter (default 30 s) plus up to
	// half of it again as jitter, so a fleet does not come back at once.
	MemoryBudget int64
	AdmitWait    time.Duration
	RetryAfter   time.Duration
	// Retention keeps raw chunks this long (default 90 days).
	Retention time.Duration
	// Hook, when set, sees every counted transaction record of a chunk and
	// is told once the chunk is stored (the console's alerts).
	Hook Hook
	// CompactAfter folds hourly aggregates into daily ones once their day
	// is this old (default 30 days); AggregateRetention deletes daily
	// aggregates older than it (0: kept for ever).
	CompactAfter, AggregateRetention time.Duration
	// Raw, when set, keeps raw chunks instead of files under Dir (object
	// storage for replicas: console/chunkstore), under the same relative
	// key <date>/<device>/<chunk>.ndjson.gz.
	Raw RawStore
	// Sink, when set, is given every new chunk before its aggregates are
	// committed (a SIEM feed: console/publish); its error answers 503 and
	// the agent retries, so the sink sees each record at least once and the
	// aggregates count it exactly once.
	Sink Sink
	Log  *slog.Logger
	Now  func() time.Time
}

// Hook is the aggregation hook: Chunk is called as a chunk's records are
// read, its ChunkHook sees each counted transaction record with the app
// and domain ingest matched, and Stored runs once the chunk's aggregates
// are committed (never for a duplicate or refused chunk).
type Hook interface {
	Chunk(device string) ChunkHook
}

// ChunkHook is one chunk's view of its records.
type ChunkHook interface {
	// Record must not keep r past the call: ingest reuses it for the
	// chunk's next record.
	Record(r *telemetry.Record, count int64, appID, domain string)
	Stored(ctx context.Context, meta store.ChunkMeta)
}

// RawStore keeps raw chunks by relative key. Get opens one for hunting and
// device timelines (console/rawchunk); a chunk that is gone (retention)
// returns an error wrapping fs.ErrNotExist.
type RawStore interface {
	Put(ctx context.Context, key string, body io.Reader, size int64) error
	Delete(ctx context.Context, key string) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// Sink takes a new chunk's gzip NDJSON.
type Sink interface {
	Publish(ctx context.Context, device, chunk string, gz io.Reader) error
}

// perUpload is the working set of one upload besides its body: the gzip
// window and buffers, the line buffer, the aggregates, and the string
// interner (at most 1,024 values of 128 bytes: ~200 KB).
const perUpload = 1 << 20

// Ingest is the http.Handler for PUT /v1/telemetry/{deviceId}/{chunkId}.
type Ingest struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	budget *semaphore.Weighted
	// bodyGrace is bodyGrace and caps defaultCaps (tests lower them).
	bodyGrace time.Duration
	caps      keyCaps

	mu    sync.Mutex
	locks map[string]*deviceLock

	// lineReaders keeps parse's line buffers (MaxLine, 64 KiB by
	// default) for the next upload instead of the collector.
	lineReaders sync.Pool

	stats Stats
}

type deviceLock struct {
	slot chan struct{} // one upload at a time
	refs int
}

// Stats counts what ingest did since start.
type Stats struct {
	Created        atomic.Int64
	Duplicates     atomic.Int64
	Conflicts      atomic.Int64
	Refused        atomic.Int64
	TooLarge       atomic.Int64
	Busy           atomic.Int64
	Records        atomic.Int64
	UnknownActions atomic.Int64
	InFlight       atomic.Int64
	FoldedRecords  atomic.Int64
	// ClampedTimestamps counts records re-dated to their receipt time;
	// skipped the records left out of taken chunks, by reason.
	ClampedTimestamps atomic.Int64
	mu                sync.Mutex
	skipped           map[string]int64
}

func (s *Stats) skip(m map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.skipped == nil {
		s.skipped = map[string]int64{}
	}
	for k, v := range m {
		s.skipped[k] += v
	}
}

// Snapshot is Stats as plain numbers.
type Snapshot struct {
	Created        int64 `json:"created"`
	Duplicates     int64 `json:"duplicates"`
	Conflicts      int64 `json:"conflicts"`
	Refused        int64 `json:"refused"`
	TooLarge       int64 `json:"tooLarge"`
	Busy           int64 `json:"busy"`
	Records        int64 `json:"records"`
	UnknownActions int64 `json:"unknownActions"`
	InFlight       int64 `json:"inFlight"`
	// SkippedRecords: records left out of chunks that were taken, by
	// reason (malformed, lineTooLong, noTimestamp, otherDeviceId, …).
	SkippedRecords map[string]int64 `json:"skippedRecords"`
	// ClampedTimestamps: records dated more than a year before or an hour
	// after their receipt, counted at the receipt time instead.
	ClampedTimestamps int64 `json:"clampedTimestamps"`
	// FoldedRecords: records counted under "(other)" (or whose user or
	// address was not kept) because their chunk had more distinct keys
	// than one chunk may add (docs/console.md "Ingest").
	FoldedRecords int64 `json:"foldedRecords"`
}

// New checks the config and creates Dir; it starts nothing.
func New(cfg Config) (*Ingest, error) {
	if cfg.Store == nil || cfg.Auth == nil || cfg.Dir == "" {
		return nil, errors.New("ingest: Store, Auth and Dir are required")
	}
	if cfg.MaxCompressed <= 0 {
		cfg.MaxCompressed = 8 << 20
	}
	if cfg.MaxDecompressed <= 0 {
		cfg.MaxDecompressed = 64 << 20
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 64 << 10
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 200000
	}
	if cfg.MemoryBudget <= 0 {
		cfg.MemoryBudget = 64 << 20
	}
	// One upload's worst case must fit, or it could never be taken.
	cfg.MemoryBudget = max(cfg.MemoryBudget, cfg.MaxCompressed+bodyBlock+perUpload+maxAggregateBytes)
	if cfg.AdmitWait <= 0 {
		cfg.AdmitWait = 2 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 30 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 90 * 24 * time.Hour
	}
	if cfg.Matcher == nil {
		cfg.Matcher = func() Matcher { return nil }
	}
	if cfg.CompactAfter <= 0 {
		cfg.CompactAfter = 30 * 24 * time.Hour
	}
	in := &Ingest{cfg: cfg, log: cfg.Log, now: cfg.Now, budget: semaphore.NewWeighted(cfg.MemoryBudget), locks: map[string]*deviceLock{},
		bodyGrace: bodyGrace, caps: defaultCaps}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.now == nil {
		in.now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return in, nil
}

// Stats returns the counters.
func (in *Ingest) Stats() Snapshot {
	s := &in.stats
	out := Snapshot{Created: s.Created.Load(), Duplicates: s.Duplicates.Load(), Conflicts: s.Conflicts.Load(), Refused: s.Refused.Load(),
		TooLarge: s.TooLarge.Load(), Busy: s.Busy.Load(), Records: s.Records.Load(), UnknownActions: s.UnknownActions.Load(), InFlight: s.InFlight.Load(),
		ClampedTimestamps: s.ClampedTimestamps.Load(), FoldedRecords: s.FoldedRecords.Load(), SkippedRecords: map[string]int64{}}
	s.mu.Lock()
	maps.Copy(out.SkippedRecords, s.skipped)
	s.mu.Unlock()
	return out
}

// httpError is an answer with a status.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func (in *Ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code, err := in.put(w, r)
	var he *httpError
	switch {
	case err == nil:
		w.WriteHeader(code)
		return
	case errors.As(err, &he):
		code = he.code
	default:
		in.log.Error("ingest: chunk not stored", "path", r.URL.Path, "err", err)
		code = http.StatusInternalServerError
	}
	// The body may be unread (or trickling in): close the connection
	// rather than let the server drain it before answering.
	w.Header().Set("Connection", "close")
	switch code {
	case http.StatusRequestEntityTooLarge:
		in.stats.TooLarge.Add(1)
	case http.StatusServiceUnavailable:
		in.stats.Busy.Add(1)
		ra := in.cfg.RetryAfter + time.Duration(rand.Int64N(int64(in.cfg.RetryAfter/2)+1))
		w.Header().Set("Retry-After", strconv.Itoa(int(ra.Seconds())))
	case http.StatusConflict:
		in.stats.Conflicts.Add(1)
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="netward"`)
		in.stats.Refused.Add(1)
	case http.StatusForbidden:
		in.stats.Refused.Add(1)
	}
	http.Error(w, err.Error(), code)
}

func (in *Ingest) put(w http.ResponseWriter, r *http.Request) (int, error) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		return 0, fail(http.StatusMethodNotAllowed, "use PUT /v1/telemetry/{deviceId}/{chunkId}")
	}
	device, chunk := r.PathValue("device"), r.PathValue("chunk")
	if !auth.ValidID(device) || !auth.ValidID(chunk) {
		return 0, fail(http.StatusBadRequest, "device and chunk ids may only use letters, digits, '.', '_' and '-' (at most 128), starting with a letter or digit")
	}
	dev, err := in.cfg.Auth.Device(r.Context(), auth.BearerToken(r))
	switch {
	case errors.Is(err, auth.ErrRevoked):
		return 0, fail(http.StatusForbidden, "%v", err)
	case errors.Is(err, auth.ErrBadDeviceToken):
		return 0, fail(http.StatusUnauthorized, "%v", err)
	case err != nil:
		return 0, fail(http.StatusServiceUnavailable, "device check failed; retry later")
	case dev.ID != device:
		return 0, fail(http.StatusForbidden, "this device token belongs to device %q, not %q", dev.ID, device)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "gzip" {
		return 0, fail(http.StatusUnsupportedMediaType, "Content-Encoding must be gzip, not %q", ce)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		return 0, fail(http.StatusUnsupportedMediaType, "Content-Type must be application/x-ndjson, not %q", ct)
	}
	if r.ContentLength > in.cfg.MaxCompressed {
		return 0, fail(http.StatusRequestEntityTooLarge, "chunk is %d bytes; the limit is %d", r.ContentLength, in.cfg.MaxCompressed)
	}
	// One upload per device at a time, taken before any memory: a device
	// cannot hold more than its share of the budget however many
	// connections it opens (review #6). A second upload of the same device
	// waits up to AdmitWait for the first, then gets 503.
	unlock, ok := in.lockDevice(r.Context(), device)
	if !ok {
		return 0, fail(http.StatusServiceUnavailable, "device %s is already uploading a chunk; retry after the Retry-After delay", device)
	}
	defer unlock()
	ch := &charge{in: in, ctx: r.Context()}
	defer ch.release()
	if err := ch.grow(perUpload); err != nil {
		return 0, err
	}
	in.stats.InFlight.Add(1)
	defer in.stats.InFlight.Add(-1)

	body, err := in.readBody(w, r, ch)
	if err != nil {
		return 0, err
	}
	digest := body.digest

	if code, err, done := in.already(r.Context(), device, chunk, digest); done {
		return code, err
	}
	now := in.now().UTC()
	b, err := in.parse(body.reader(), device, now, ch)
	if err != nil {
		return 0, err
	}
	rel, err := chunkPath(now, device, chunk)
	if err != nil {
		return 0, fail(http.StatusBadRequest, "%v", err)
	}
	if in.cfg.Raw != nil {
		if err := in.cfg.Raw.Put(r.Context(), filepath.ToSlash(rel), body.reader(), body.n); err != nil {
			in.log.Error("ingest: raw chunk not stored", "device", device, "chunk", chunk, "err", err)
			return 0, fail(http.StatusServiceUnavailable, "raw chunk storage unavailable; retry later")
		}
	} else if err := writeFile(filepath.Join(in.cfg.Dir, rel), body.reader()); err != nil {
		return 0, fmt.Errorf("store raw chunk: %w", err)
	}
	if in.cfg.Sink != nil {
		if err := in.cfg.Sink.Publish(r.Context(), device, chunk, body.reader()); err != nil {
			in.log.Error("ingest: chunk not published", "device", device, "chunk", chunk, "err", err)
			return 0, fail(http.StatusServiceUnavailable, "record publishing unavailable; retry later")
		}
	}
	b.Meta = store.ChunkMeta{DeviceID: device, ChunkID: chunk, SHA256: digest, CompressedBytes: body.n, Records: b.records, ReceivedAt: now, Path: rel}
	switch err := in.cfg.Store.IngestChunk(r.Context(), &b.ChunkBatch); {
	case errors.Is(err, store.ErrDuplicateChunk):
		in.stats.Duplicates.Add(1)
		return http.StatusOK, nil
	case errors.Is(err, store.ErrChunkConflict):
		return 0, fail(http.StatusConflict, "chunk %s of device %s is already stored with different content; a chunk id names one chunk for ever", chunk, device)
	case err != nil:
		return 0, fmt.Errorf("aggregate chunk: %w", err)
	}
	if b.hook != nil {
		b.hook.Stored(r.Context(), b.Meta)
	}
	in.stats.Created.Add(1)
	in.stats.Records.Add(b.records)
	in.stats.UnknownActions.Add(b.unknown)
	in.stats.ClampedTimestamps.Add(b.clamped)
	in.stats.FoldedRecords.Add(b.folded)
	if len(b.skipped) > 0 || b.clamped > 0 {
		in.stats.skip(b.skipped)
		// One line per chunk, never per record.
		in.log.Warn("ingest: chunk taken with records left out or re-dated", "device", device, "chunk", chunk,
			"records", b.records, "skipped", b.skipped, "clampedTimestamps", b.clamped)
	}
	return http.StatusCreated, nil
}

// chunkPath is where a chunk's raw file goes, relative to the chunk
// directory: <date>/<device>/<chunk>.ndjson.gz. The ids are checked again
// here, next to the file system, and the path must stay local and keep its
// three elements.
func chunkPath(received time.Time, device, chunk string) (string, error) {
	rel := filepath.Join(received.Format("2006-01-02"), device, chunk+".ndjson.gz")
	if !auth.ValidID(device) || !auth.ValidID(chunk) || !filepath.IsLocal(rel) || strings.Count(filepath.ToSlash(rel), "/") != 2 || filepath.Base(filepath.Dir(rel)) != device {
		return "", fmt.Errorf("device %q / chunk %q do not make a file name under the data directory", device, chunk)
	}
	return rel, nil
}

// already answers a chunk id the store has: 200 for the same bytes (a
// retry; nothing is counted again), 409 for other bytes.
func (in *Ingest) already(ctx context.Context, device, chunk, digest string) (int, error, bool) {
	c, err := in.cfg.Store.Chunk(ctx, device, chunk)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil, false
	case err != nil:
		return 0, fail(http.StatusServiceUnavailable, "database unavailable; retry later"), true
	case c.SHA256 == digest:
		in.stats.Duplicates.Add(1)
		return http.StatusOK, nil, true
	}
	return 0, fail(http.StatusConflict, "chunk %s of device %s is already stored with different content; a chunk id names one chunk for ever", chunk, device), true
}

// lockDevice serialises one device's chunks (in order of arrival) without
// holding up other devices; it gives up after AdmitWait (ok false).
func (in *Ingest) lockDevice(ctx context.Context, id string) (unlock func(), ok bool) {
	in.mu.Lock()
	l := in.locks[id]
	if l == nil {
		l = &deviceLock{slot: make(chan struct{}, 1)}
		in.locks[id] = l
	}
	l.refs++
	in.mu.Unlock()
	done := func() {
		in.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(in.locks, id)
		}
		in.mu.Unlock()
	}
	t := time.NewTimer(in.cfg.AdmitWait)
	defer t.Stop()
	select {
	case l.slot <- struct{}{}:
		return func() { <-l.slot; done() }, true
	case <-t.C:
	case <-ctx.Done():
	}
	done()
	return nil, false
}

// charge is the memory budget one upload holds; it grows as the upload
// receives bytes and builds aggregates, so what it holds is what it uses
// (a slow upload holds only what has arrived).
type charge struct {
	in   *Ingest
	ctx  context.Context
	held int64
	// aggregates is the part of held charged for the chunk's aggregates.
	aggregates int64
}

// aggregateStep is how much budget the aggregates take at a time;
// maxAggregateBytes bounds what one chunk's capped aggregates can reach.
const (
	aggregateStep     = 1 << 20
	maxAggregateBytes = 32 << 20
)

// grow takes n more bytes of the budget, waiting up to AdmitWait: past it,
// 503 with Retry-After.
func (c *charge) grow(n int64) error {
	actx, cancel := context.WithTimeout(c.ctx, c.in.cfg.AdmitWait)
	defer cancel()
	if err := c.in.budget.Acquire(actx, n); err != nil {
		return fail(http.StatusServiceUnavailable, "the console is busy taking other chunks; retry after the Retry-After delay")
	}
	c.held += n
	return nil
}

func (c *charge) release() {
	if c.held > 0 {
		c.in.budget.Release(c.held)
		c.held = 0
	}
}

// bodyBlock is the unit an upload's body is read and charged in.
const bodyBlock = 256 << 10

// Uploads must arrive at bodyMinRate after a bodyGrace: a trickle is cut
// with 408 (the agent retries it) instead of holding a device slot and
// budget for minutes (review #6).
const (
	bodyGrace   = 15 * time.Second
	bodyMinRate = 32 << 10 // bytes per second
)

// body is a request body read in blocks (never copied into one slice).
type body struct {
	blocks [][]byte
	n      int64
	digest string
}

func (b *body) reader() io.Reader {
	rs := make([]io.Reader, len(b.blocks))
	for i, blk := range b.blocks {
		rs[i] = bytes.NewReader(blk)
	}
	return io.MultiReader(rs...)
}

// readBody reads the body under a deadline proportional to its size,
// charging the budget block by block as bytes arrive, and hashes it.
func (in *Ingest) readBody(w http.ResponseWriter, r *http.Request, ch *charge) (*body, error) {
	size := r.ContentLength
	if size < 0 {
		size = in.cfg.MaxCompressed
	}
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(in.bodyGrace + time.Duration(size/bodyMinRate)*time.Second)
	if rc.SetReadDeadline(deadline) == nil {
		defer rc.SetReadDeadline(time.Time{})
	}
	rd := http.MaxBytesReader(w, r.Body, in.cfg.MaxCompressed)
	h := sha256.New()
	b := &body{}
	for {
		// A block, or less when the declared length is smaller (+1 byte to
		// see the end): most chunks are tens of KB.
		size := int64(bodyBlock)
		if r.ContentLength >= 0 {
			size = min(size, r.ContentLength-b.n+1)
		}
		if err := ch.grow(size); err != nil {
			return nil, err
		}
		blk := make([]byte, size)
		n, err := io.ReadFull(rd, blk)
		if n > 0 {
			b.blocks = append(b.blocks, blk[:n])
			b.n += int64(n)
			h.Write(blk[:n])
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			var ne net.Error
			switch {
			case errors.As(err, &mbe):
				return nil, fail(http.StatusRequestEntityTooLarge, "chunk is larger than %d bytes", in.cfg.MaxCompressed)
			case errors.As(err, &ne) && ne.Timeout():
				return nil, fail(http.StatusRequestTimeout, "the upload arrived slower than %d KiB/s; retry", bodyMinRate>>10)
			}
			return nil, fail(http.StatusBadRequest, "read body: %v", err)
		}
	}
	b.digest = hex.EncodeToString(h.Sum(nil))
	return b, nil
}

// parse streams the gzip body line by line into aggregates: memory stays
// at one line and the aggregates, however far the chunk decompresses. A
// record that cannot be counted (broken JSON, a line over MaxLine, another
// device's id, a bad field) is skipped and counted by reason; the rest of
// the chunk is taken — the raw file keeps every line. Only a chunk with no
// countable record at all, or one past the size limits, is refused.
func (in *Ingest) parse(body io.Reader, device string, received time.Time, ch *charge) (*batch, error) {
	// klauspost's reader: decompression was ~9 % of the console's CPU at
	// fleet rate (issue 22), and it decompresses an agent's 4,000-record
	// chunk 1.43× as fast as compress/gzip (docs/scale.md "The console's
	// parse"). newGunzip holds it to what compress/gzip accepts.
	// Not pooled: klauspost's Reset keeps the previous stream's state
	// (see gunzip).
	zr, err := newGunzip(body)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "body is not gzip: %v", err)
	}
	lr := &io.LimitedReader{R: zr, N: in.cfg.MaxDecompressed + 1}
	br, _ := in.lineReaders.Get().(*bufio.Reader)
	if br == nil || br.Size() != in.cfg.MaxLine+1 {
		br = bufio.NewReaderSize(lr, in.cfg.MaxLine+1)
	} else {
		br.Reset(lr)
	}
	defer func() {
		br.Reset(nil) // keeps no reference to this upload's body
		in.lineReaders.Put(br)
	}()
	b := newBatch(in.cfg.Matcher())
	b.caps = in.caps
	if in.cfg.Hook != nil {
		b.hook = in.cfg.Hook.Chunk(device)
	}
	line, lines, firstBad := 0, 0, ""
	strs := newInterner() // one per chunk: its strings live as long as the batch
	// One record for every line (decodeRecord zeroes it): one allocated
	// per line was 2.4 % of the console's CPU at fleet rate. The hook does not
	// keep it (ChunkHook.Record).
	var rec record
	skip := func(reason string) {
		b.skipped[reason]++
		if firstBad == "" {
			firstBad = fmt.Sprintf("line %d: %s", line, reason)
		}
	}
	for {
		raw, long, err := readLine(br)
		if len(raw) == 0 && !long && err != nil {
			if lr.N <= 0 {
				return nil, fail(http.StatusRequestEntityTooLarge, "chunk decompresses to more than %d bytes", in.cfg.MaxDecompressed)
			}
			if !errors.Is(err, io.EOF) {
				return nil, fail(http.StatusBadRequest, "body is not valid gzip: %v", err)
			}
			break
		}
		line++
		if lr.N <= 0 { // the line was cut by the limit
			return nil, fail(http.StatusRequestEntityTooLarge, "chunk decompresses to more than %d bytes", in.cfg.MaxDecompressed)
		}
		if long {
			skip(skipLineTooLong)
			continue
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		if lines >= in.cfg.MaxRecords {
			return nil, fail(http.StatusRequestEntityTooLarge, "chunk has more than %d records", in.cfg.MaxRecords)
		}
		lines++
		if err := decodeRecord(raw, &rec, strs); err != nil {
			skip(skipMalformed)
			continue
		}
		reason, clamped := rec.check(device, received)
		if reason != "" {
			skip(reason)
			continue
		}
		if clamped {
			b.clamped++
		}
		b.add(&rec)
		// The aggregates' memory is charged as it grows (review #5).
		for b.mem > ch.aggregates {
			if err := ch.grow(aggregateStep); err != nil {
				return nil, err
			}
			ch.aggregates += aggregateStep
		}
	}
	if b.records == 0 {
		if firstBad != "" {
			return nil, fail(http.StatusBadRequest, "chunk has no record that can be counted (%s)", firstBad)
		}
		return nil, fail(http.StatusBadRequest, "chunk has no records")
	}
	return b, nil
}

// readLine reads one line of at most the reader's buffer size; a longer
// line is consumed to its end and reported as long (its bytes dropped).
func readLine(br *bufio.Reader) (line []byte, long bool, err error) {
	line, err = br.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		long = true
		_, err = br.ReadSlice('\n')
	}
	if long {
		return nil, true, nil
	}
	return line, false, err
}

// writeFile writes data durably: a temporary file, fsync, rename, fsync of
// the directory.
func writeFile(path string, data io.Reader) error {
	dir := filepath.Dir(path)
	// The device's directory of the day exists but for its first chunk:
	// made only when the file cannot be created (MkdirAll's stat was a
	// system call of every upload).
	f, err := os.CreateTemp(dir, ".chunk-*")
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		f, err = os.CreateTemp(dir, ".chunk-*")
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := io.Copy(f, data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Run removes raw chunks past the retention period and compacts old
// aggregates, hourly, until ctx ends.
func (in *Ingest) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	// The fleet-wide rollups' pending rows (PostgreSQL), folded every
	// second while that is cheap and less often under load (foldWait), so
	// their tables stay small (store.FoldRollups).
	folded := make(chan struct{})
	defer func() { <-folded }()
	go func() {
		defer close(folded)
		failing := false
		wait := foldMin
		lastVacuum := time.Now()
		for {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			start := time.Now()
			err := in.cfg.Store.FoldRollups(ctx)
			wait = foldWait(time.Since(start))
			if err == nil && time.Since(lastVacuum) >= vacuumEvery {
				// Every view folds first and so scans the pending
				// tables: their folded rows' pages are reclaimed here
				// rather than when autovacuum comes (store.VacuumPending).
				err = in.cfg.Store.VacuumPending(ctx)
				lastVacuum = time.Now()
			}
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				in.log.Error("ingest: folding the fleet-wide rollups failed; retrying every second (the views fold before they read)", "err", err)
				failing = true
			case err == nil && failing:
				in.log.Info("ingest: folding the fleet-wide rollups works again")
				failing = false
			}
			if err != nil {
				wait = foldMin
			}
		}
	}()
	for {
		if n, err := in.Expire(ctx); err != nil && ctx.Err() == nil {
			in.log.Error("ingest: retention pass failed", "err", err)
		} else if n > 0 {
			in.log.Info("ingest: raw chunks past retention removed", "chunks", n)
		}
		// The hunting index's rows of past hours into the per-day summary,
		// and the devices' app rows of those hours into their days
		// (PostgreSQL: store.FoldHuntDays); before compaction, which drops
		// the rows of the days past retention.
		if f, err := in.cfg.Store.FoldHuntDays(ctx, in.now()); err != nil && ctx.Err() == nil {
			in.log.Error("ingest: folding the hunting index and the devices' app hours into days failed; it is tried again in an hour (hunts and views read the hours not folded yet meanwhile)", "err", err)
		} else if f.To > f.From {
			in.log.Info("ingest: hunting index and devices' app hours folded into days", "from", time.Unix(f.From, 0).UTC(), "to", time.Unix(f.To, 0).UTC(), "dayRows", f.Rows, "appDayRows", f.AppRows, "waited", f.Waited)
		}
		if st, err := in.Compact(ctx); err != nil && ctx.Err() == nil {
			in.log.Error("ingest: compaction of old aggregates failed; it is tried again in an hour", "err", err)
		} else if st.Days > 0 || st.DailyRowsDeleted > 0 {
			in.log.Info("ingest: old hourly aggregates compacted into days", "days", st.Days, "hourlyRows", st.HourlyRows, "dailyRowsPastRetention", st.DailyRowsDeleted)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// The fold of the pending fleet-wide rollups (Run): every foldMin while a
// fold is quick; a fold that took long (a high ingest rate) is followed
// by a wait of foldSlowdown times its length, at most foldMax. A fold's
// cost is mostly one upsert per distinct row it adds to, and the longer
// the wait the more pending rows of the same app, domain and bucket each
// upsert sums: measured over 15 s at 84,000–86,000 records/s, a 3-second
// interval wrote 89,000 roll_app rows where the 1-second one wrote
// 163,000 (docs/scale.md "Fourth round"). Views fold before they
// read, so what they show is never older; under such a load a view folds
// up to foldMax of pending rows itself.
const (
	foldMin      = time.Second
	foldMax      = 5 * time.Second
	foldSlowdown = 4
	// vacuumEvery: the pending tables' folded rows are vacuumed at most
	// this often (store.VacuumPending).
	vacuumEvery = 10 * time.Second
)

// foldWait is the wait before the next fold after one that took took.
func foldWait(took time.Duration) time.Duration {
	return min(max(foldSlowdown*took, foldMin), foldMax)
}

// Compact folds hourly aggregates older than CompactAfter into daily
// ones and drops daily ones past AggregateRetention.
func (in *Ingest) Compact(ctx context.Context) (store.CompactStats, error) {
	now := in.now()
	var drop time.Time
	if in.cfg.AggregateRetention > 0 {
		drop = now.Add(-in.cfg.AggregateRetention)
	}
	return in.cfg.Store.CompactTraffic(ctx, now.Add(-in.cfg.CompactAfter), drop)
}

// Expire removes raw chunks received before now minus the retention (the
// aggregates stay) and returns how many.
func (in *Ingest) Expire(ctx context.Context) (int, error) {
	cut := in.now().Add(-in.cfg.Retention)
	total := 0
	for {
		old, err := in.cfg.Store.ChunksBefore(ctx, cut, 500)
		if err != nil || len(old) == 0 {
			return total, err
		}
		for _, c := range old {
			if in.cfg.Raw != nil {
				if err := in.cfg.Raw.Delete(ctx, filepath.ToSlash(filepath.Clean("/" + c.Path)[1:])); err != nil {
					return total, err
				}
				if err := in.cfg.Store.DeleteChunk(ctx, c.DeviceID, c.ChunkID); err != nil {
					return total, err
				}
				total++
				continue
			}
			p := filepath.Join(in.cfg.Dir, filepath.Clean("/" + c.Path)[1:])
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return total, err
			}
			// The device and date dirs, once empty; only for a path of the
			// <date>/<device>/<chunk> shape, so a row written by an older
			// console for a device "..", say, never removes the chunk
			// directory itself.
			if rel := filepath.Clean("/" + c.Path)[1:]; strings.Count(filepath.ToSlash(rel), "/") == 2 {
				_ = os.Remove(filepath.Dir(p))
				_ = os.Remove(filepath.Dir(filepath.Dir(p)))
			}
			if err := in.cfg.Store.DeleteChunk(ctx, c.DeviceID, c.ChunkID); err != nil {
				return total, err
			}
			total++
		}
	}
}

// Path is the route to mount the handler on.
const Path = "PUT /v1/telemetry/{device}/{chunk}"

// gunzip reads a gzip body of one or more members with klauspost's reader
// and refuses what compress/gzip refuses. Alone, klauspost's reader ends
// the stream cleanly (io.EOF) when a further member's header breaks off in
// its name or comment, where compress/gzip reports io.ErrUnexpectedEOF; a
// chunk taken that way would then fail in the console's other readers of
// the raw chunk (the Kafka publisher: 503 on every retry; rawchunk), which
// use compress/gzip. So members are read one at a time, and a header that
// ends the input is an error when any byte of it was there
// (TestGzipLikeStdlib).
type gunzip struct {
	src *bufio.Reader // a ByteReader: the reader stops right after a member
	zr  io.Reader     // the member being read
	// more reads the members after the first: compress/gzip's reader,
	// Reset for each. klauspost's Reset keeps state of the member before
	// (a corrupt member after another read further than alone:
	// TestGzipMemberReadsAsAlone), and a new klauspost reader for each
	// member allocated ~37 KB (a body of 20-byte empty members: 13 GB and
	// about a minute of CPU per 8 MiB upload, TestGzipManyMembersCheap).
	// Agents write one member, which klauspost's reader still reads.
	more *stdgzip.Reader
}

func newGunzip(r io.Reader) (*gunzip, error) {
	src := bufio.NewReader(r)
	zr, err := gzip.NewReader(src)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return &gunzip{src: src, zr: zr}, nil
}

func (g *gunzip) Read(p []byte) (int, error) {
	for {
		n, err := g.zr.Read(p)
		if err != io.EOF {
			return n, err
		}
		h, err := g.src.Peek(4)
		if len(h) == 0 {
			return n, err // io.EOF: no further member
		}
		// compress/gzip takes reserved flag bits; RFC 1952 §2.3.1.2 and
		// klauspost's reader refuse them (TestGzipLikeStdlib).
		if len(h) == 4 && h[0] == 0x1f && h[1] == 0x8b && h[3]&0xe0 != 0 {
			return n, gzip.ErrHeader
		}
		if g.more == nil {
			g.more = new(stdgzip.Reader)
		}
		if err := g.more.Reset(g.src); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		g.more.Multistream(false)
		g.zr = g.more
		if n > 0 {
			return n, nil
		}
	}
}
