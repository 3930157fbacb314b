package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/netward/netward/console/ingest"
	"github.com/netward/netward/console/ingest/ingesttest"
	"github.com/netward/netward/console/rawchunk"
	"github.com/netward/netward/telemetry"
)

// fakeS3 starts an in-process S3 server and returns a store on it.
func fakeS3(t *testing.T) *S3 {
	t.Helper()
	ts := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(ts.Close)
	s, err := New(Config{Endpoint: ts.URL, Bucket: "netward-chunks", Region: "us-east-1", AccessKey: "test", SecretKey: "testtesttest", Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// An uploaded chunk lands in object storage at
// tenant/date/device/chunk.ndjson.gz, byte for byte, and nothing is written
// under the data directory; a retry is counted once; retention deletes the
// object.
func TestIngestToObjectStorage(t *testing.T) {
	s3 := fakeS3(t)
	dir := t.TempDir()
	now := time.Now().UTC()
	srv := ingesttest.Serve(t, ingest.Config{Raw: s3, Dir: dir, Retention: time.Hour, Now: func() time.Time { return now }})
	gz := ingesttest.Chunk(srv.Device, 50, now)
	if code := srv.Put(t, "c1", gz); code != 201 {
		t.Fatalf("upload = %d", code)
	}
	if code := srv.Put(t, "c1", gz); code != 200 {
		t.Fatalf("retry = %d, want 200", code)
	}
	rel := now.Format("2006-01-02") + "/" + srv.Device + "/c1.ndjson.gz"
	if got := s3.Key(rel); got != "acme/"+rel {
		t.Fatalf("key = %s", got)
	}
	rc, err := s3.Get(context.Background(), rel)
	if err != nil {
		t.Fatalf("object %s: %v", s3.Key(rel), err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, gz) {
		t.Errorf("object holds %d bytes, not the %d uploaded", len(b), len(gz))
	}
	if _, recs, _ := srv.Store.ChunkStats(context.Background(), srv.Device); recs != 50 {
		t.Errorf("records counted = %d, want 50 once", recs)
	}
	if left, _ := filepathGlob(dir); len(left) != 0 {
		t.Errorf("raw files written locally: %v", left)
	}
	// Hunting and device timelines read the chunk from the store, not from
	// the (empty) chunk directory.
	if n := scanCount(t, s3, dir, rel); n != 50 {
		t.Errorf("rawchunk.Scan read %d records through the store, want 50", n)
	}
	// Past retention the object goes.
	now = now.Add(2 * time.Hour)
	if n, err := srv.Ingest.Expire(context.Background()); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	if _, err := s3.Get(context.Background(), rel); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get after retention = %v, want fs.ErrNotExist", err)
	}
	if n := scanCount(t, s3, dir, rel); n != 0 {
		t.Errorf("rawchunk.Scan read %d records of an expired chunk", n)
	}
}

// scanCount counts the records rawchunk.Scan reads of rel (an error fails).
func scanCount(t *testing.T, s3 *S3, dir, rel string) int {
	t.Helper()
	n := 0
	if err := rawchunk.Scan(context.Background(), s3, dir, rel, nil, func(*telemetry.Record) bool { n++; return true }); err != nil {
		t.Fatalf("rawchunk.Scan: %v", err)
	}
	return n
}

// A store that cannot be reached answers 503 (the agent retries) and
// counts nothing.
func TestIngestObjectStorageDown(t *testing.T) {
	ts := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	s, err := New(Config{Endpoint: ts.URL, Bucket: "b", AccessKey: "k", SecretKey: "secretsecret"})
	if err != nil {
		t.Fatal(err)
	}
	ts.Close()
	srv := ingesttest.Serve(t, ingest.Config{Raw: s})
	if code := srv.Put(t, "c1", ingesttest.Chunk(srv.Device, 5, time.Now())); code != 503 {
		t.Fatalf("upload with the store down = %d, want 503", code)
	}
	if n, _, _ := srv.Store.ChunkStats(context.Background(), srv.Device); n != 0 {
		t.Errorf("%d chunks counted although the raw chunk was not stored", n)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, c := range []Config{{Endpoint: "s3.example", Bucket: "b"}, {Endpoint: "https://s3.example"}, {Endpoint: "https://s3.example", Bucket: "b", Tenant: "a/b"}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
