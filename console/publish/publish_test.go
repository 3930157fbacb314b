package publish

import (
	"bytes"
	"compress/gzip"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/ingest/ingesttest"
)

// Every record of an ingested chunk reaches the topic, keyed by device
// with the chunk id and line number; a retried chunk (already counted) is
// not published again.
func TestIngestPublishesToKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "netward-telemetry"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k, err := New(Config{Brokers: c.ListenAddrs(), Topic: "netward-telemetry"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	srv := ingesttest.Serve(t, ingest.Config{Sink: k})
	gz := ingesttest.Chunk(srv.Device, 30, time.Now())
	if code := srv.Put(t, "c1", gz); code != 201 {
		t.Fatalf("upload = %d", code)
	}
	if code := srv.Put(t, "c1", gz); code != 200 {
		t.Fatalf("retry = %d", code)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("netward-telemetry"))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(got) < 31 && ctx.Err() == nil {
		f := cons.PollFetches(ctx)
		f.EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	if len(got) != 30 {
		t.Fatalf("%d records on the topic, want 30 (once each)", len(got))
	}
	lines := map[string]bool{}
	for _, r := range got {
		if string(r.Key) != srv.Device || !bytes.Contains(r.Value, []byte(`"DeviceId":"`+srv.Device+`"`)) {
			t.Fatalf("record %s = %s", r.Key, r.Value)
		}
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["chunk"] != "c1" || h["line"] == "" || lines[h["line"]] {
			t.Fatalf("headers %v", h)
		}
		lines[h["line"]] = true
	}
}

// Kafka unreachable: the upload gets 503 and nothing is counted, so the
// agent's retry publishes and counts it later.
func TestIngestKafkaDown(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.ListenAddrs()
	c.Close()
	k, err := New(Config{Brokers: addrs, Topic: "t", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	ctx := context.Background()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("{\"a\":1}\n"))
	zw.Close()
	if err := k.Publish(ctx, "d", "c", &gz); err == nil {
		t.Fatal("Publish to a stopped cluster succeeded")
	}
	srv := ingesttest.Serve(t, ingest.Config{Sink: k})
	if code := srv.Put(t, "c1", ingesttest.Chunk(srv.Device, 3, time.Now())); code != 503 {
		t.Fatalf("upload with Kafka down = %d, want 503", code)
	}
	if n, _, _ := srv.Store.ChunkStats(context.Background(), srv.Device); n != 0 {
		t.Errorf("%d chunks counted although they were not published", n)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(Config{Topic: "t"}); err == nil || !strings.Contains(err.Error(), "brokers") {
		t.Errorf("New without brokers: %v", err)
	}
}
