package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
)

// BenchmarkPipeline measures records/s through Add → journal (group commit,
// fsync) → chunk close (gzip, spool) on one core, and the heap in use at the
// end (steady state: the spool is on disk, the queue is bounded).
func BenchmarkPipeline(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	p, err := New(Config{Dir: b.TempDir(), SpoolBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	r := sampleRecord
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		r.LocalPort = n & 0xffff
		for !p.Add(r) {
			runtime.Gosched() // queue full: let the writer drain (not counted as loss here)
		}
		n++
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heapMiB")
	cancel()
	<-done
	if d := p.Status().DroppedSpoolChunks; d > 0 {
		b.Logf("spool evicted %d chunks (bounded at 64 MiB)", d)
	}
}

// BenchmarkAdd is the producer's cost alone (what an interceptor pays).
func BenchmarkAdd(b *testing.B) {
	p, _ := New(Config{Dir: b.TempDir(), QueueRecords: 1 << 30})
	r := sampleRecord
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Add(r)
		if i++; i == 1<<16 { // keep memory flat without a writer
			p.mu.Lock()
			p.queue = p.queue[:0]
			p.mu.Unlock()
			i = 0
		}
	}
}

// Encoding one record: AppendJSON against the encoding/json baseline.
func BenchmarkEncode(b *testing.B) {
	b.Run("AppendJSON", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendJSON(buf[:0], &sampleRecord)
		}
	})
	// A blocked DNS answer as the agent writes it under the blocked flood
	// (issue 21): a list's derived id, a device id as enrolment makes it.
	blocked := Record{Timestamp: time.Date(2026, 12, 7, 1, 0, 0, 123456789, time.UTC), DeviceId: "3f2a9c4e-5b1d-4e8f-9a7c-2d6b1e0f4a93",
		DeviceName: "laptop-7", ActionType: NetworkProtectionBlocked, RemoteUrl: "pagead2.googlesyndication-tracker.example.com",
		LocalIP: "127.0.0.1", LocalPort: 40123, Protocol: ProtoDNS, Source: SourceDNS, IndicatorId: "blocklist-stevenblack.txt:41234"}
	b.Run("AppendJSON-blocked", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendJSON(buf[:0], &blocked)
		}
	})
	b.Run("encoding-json-baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(&sampleRecord)
		}
	})
}

// blockedChunk is a chunk as the agent closes it under a flood of blocked
// DNS names (issue 21): ChunkRecords NetworkProtectionBlocked records, names
// from the blocklist of the DNS benchmark when it is there (BLOCKLIST, as
// scripts/bench-dns.sh), else made up.
func blockedChunk(tb testing.TB) []byte {
	var names []string
	path := os.Getenv("BLOCKLIST")
	if path == "" {
		path = "/work/shared/data/blocklist-stevenblack.txt"
	}
	if b, err := os.ReadFile(path); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "0.0.0.0" && strings.Contains(f[1], ".") {
				names = append(names, f[1])
			}
		}
	}
	if len(names) < 4000 {
		tb.Logf("no blocklist at %s: made-up names", path)
		names = names[:0]
		for i := range 4000 {
			names = append(names, "ads"+strconv.Itoa(i*7919%100003)+".tracker"+strconv.Itoa(i%97)+".example")
		}
	}
	var chunk []byte
	t0 := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	for i := range 4000 {
		n := (i * 7919) % len(names)
		r := Record{Timestamp: t0.Add(time.Duration(i) * 12500 * time.Nanosecond), DeviceId: "bench-device-01", DeviceName: "bench",
			ActionType: NetworkProtectionBlocked, RemoteUrl: names[n], LocalIP: "127.0.0.1", LocalPort: 20000 + i*31%40000,
			Protocol: ProtoDNS, Source: SourceDNS, IndicatorId: strconv.Itoa(n)}
		chunk = append(AppendJSON(chunk, &r), '\n')
	}
	return chunk
}

// BenchmarkSpoolGzip is the CPU cost of compressing a chunk into the spool:
// the standard library at the level used before (issue 21) against
// klauspost/compress at each fast level, on a chunk of blocked DNS answers.
// The output must stay a standard gzip member (TestSpoolChunkStdlibGzip).
func BenchmarkSpoolGzip(b *testing.B) {
	chunk := blockedChunk(b)
	type writer interface {
		io.WriteCloser
		Reset(io.Writer)
	}
	for _, c := range []struct {
		name string
		new  func() writer
	}{
		{"stdlib-BestSpeed", func() writer { w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed); return w }},
		{"stdlib-Default", func() writer { w, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression); return w }},
		{"klauspost-BestSpeed", func() writer { w, _ := kgzip.NewWriterLevel(io.Discard, kgzip.BestSpeed); return w }},
		{"klauspost-2", func() writer { w, _ := kgzip.NewWriterLevel(io.Discard, 2); return w }},
		{"klauspost-3", func() writer { w, _ := kgzip.NewWriterLevel(io.Discard, 3); return w }},
		{"klauspost-Default", func() writer { w, _ := kgzip.NewWriterLevel(io.Discard, kgzip.DefaultCompression); return w }},
		{"klauspost-Stateless", func() writer { w, _ := kgzip.NewWriterLevel(io.Discard, kgzip.StatelessCompression); return w }},
		{"klauspost-HuffmanOnly", func() writer { w, _ := kgzip.NewWriterLevel(io.Discard, kgzip.HuffmanOnly); return w }},
	} {
		b.Run(c.name, func(b *testing.B) {
			zw := c.new()
			var out bytes.Buffer
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				zw.Reset(&out)
				zw.Write(chunk)
				zw.Close()
			}
			b.ReportMetric(float64(out.Len())/float64(len(chunk)), "ratio")
		})
	}
}

// BenchmarkGzip4MiB is the CPU cost of closing a full 4 MiB chunk (the
// ChunkBytes bound), at the level used and the standard library's.
func BenchmarkGzip4MiB(b *testing.B) {
	var chunk []byte
	r := sampleRecord
	for i := 0; len(chunk) < 4<<20; i++ {
		r.LocalPort = i & 0xffff
		r.IndicatorId = strconv.Itoa(i % 50)
		chunk = append(AppendJSON(chunk, &r), '\n')
	}
	chunk = chunk[:4<<20]
	type writer interface {
		io.WriteCloser
		Reset(io.Writer)
	}
	for _, c := range []struct {
		name string
		zw   writer
	}{
		{"klauspost-spoolLevel-used", must(kgzip.NewWriterLevel(io.Discard, spoolLevel))},
		{"stdlib-BestSpeed-before", must(gzip.NewWriterLevel(io.Discard, gzip.BestSpeed))},
	} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				c.zw.Reset(&out)
				c.zw.Write(chunk)
				c.zw.Close()
			}
			b.ReportMetric(float64(out.Len())/float64(len(chunk)), "ratio")
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
