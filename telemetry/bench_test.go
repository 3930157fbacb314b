package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"
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
	b.Run("encoding-json-baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(&sampleRecord)
		}
	})
}

// BenchmarkGzip4MiB is the CPU cost of closing a full 4 MiB chunk.
func BenchmarkGzip4MiB(b *testing.B) {
	var chunk []byte
	r := sampleRecord
	for i := 0; len(chunk) < 4<<20; i++ {
		r.LocalPort = i & 0xffff
		r.IndicatorId = strconv.Itoa(i % 50)
		chunk = append(AppendJSON(chunk, &r), '\n')
	}
	chunk = chunk[:4<<20]
	for _, lv := range []struct {
		name  string
		level int
	}{{"BestSpeed-used", gzip.BestSpeed}, {"Default-baseline", gzip.DefaultCompression}} {
		b.Run(lv.name, func(b *testing.B) {
			zw, _ := gzip.NewWriterLevel(io.Discard, lv.level)
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
