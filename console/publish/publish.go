// Package publish sends every ingested telemetry record to Kafka for a
// SIEM: one message per NDJSON line, keyed by device id (so a device's
// records stay in order on one partition), with the chunk id and the
// line number as headers so that a consumer can drop the repeats of a
// retried chunk (delivery is at least once; the console's aggregates
// count each record exactly once).
package publish

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says where records go.
type Config struct {
	Brokers []string
	Topic   string
	// MaxLine is the longest line published (default 64 KiB, the
	// ingest's); longer lines are left out, as ingest leaves them out.
	MaxLine int
	// Timeout bounds one chunk's publication (default 10 s): past it the
	// upload gets 503 and the agent retries, instead of an upload held for
	// as long as Kafka is away.
	Timeout time.Duration
}

// Kafka is an ingest.Sink.
type Kafka struct {
	cl      *kgo.Client
	maxLine int
	timeout time.Duration
}

// New makes the client; franz-go dials only when the first records go.
func New(cfg Config) (*Kafka, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, errors.New("publish: give kafka brokers and a topic")
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 64 << 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.GzipCompression(), kgo.NoCompression()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return &Kafka{cl: cl, maxLine: cfg.MaxLine, timeout: cfg.Timeout}, nil
}

// Close flushes nothing (Publish waits for its records) and closes.
func (k *Kafka) Close() { k.cl.Close() }

// Publish sends a chunk's records and returns once Kafka acknowledged
// them all.
func (k *Kafka) Publish(ctx context.Context, device, chunk string, gz io.Reader) error {
	zr, err := gzip.NewReader(gz)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	br := bufio.NewReaderSize(zr, k.maxLine+1)
	var recs []*kgo.Record
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		long := false
		for errors.Is(err, bufio.ErrBufferFull) {
			long = true
			_, err = br.ReadSlice('\n')
		}
		if t := bytes.TrimSpace(line); !long && len(t) > 0 {
			recs = append(recs, &kgo.Record{Key: []byte(device), Value: bytes.Clone(t), Headers: []kgo.RecordHeader{
				{Key: "chunk", Value: []byte(chunk)}, {Key: "line", Value: []byte(strconv.Itoa(n))}}})
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if err := k.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("publish: kafka: %w", err)
	}
	return nil
}
