// Package chunkstore keeps the console's raw telemetry chunks in
// S3-compatible object storage, so that console replicas share them and
// engines that read NDJSON from object storage (Athena, DuckDB, Spark,
// ClickHouse's s3 table function…) query them in place: one object per
// chunk at <tenant>/<date>/<device>/<chunk>.ndjson.gz, the agent's gzip
// NDJSON byte for byte.
package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Config says where chunks go.
type Config struct {
	// Endpoint is the S3 endpoint URL (https://s3.eu-west-1.amazonaws.com,
	// http://127.0.0.1:9000 for a local MinIO).
	Endpoint string
	Bucket   string
	Region   string
	// AccessKey and SecretKey authenticate (static credentials).
	AccessKey, SecretKey string
	// Tenant is the first element of every key (default "default").
	Tenant string
}

// S3 is an ingest.RawStore on object storage.
type S3 struct {
	c      *minio.Client
	bucket string
	tenant string
}

// New checks cfg and makes the client; it connects to nothing.
func New(cfg Config) (*S3, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("chunkstore: endpoint %q: give an http:// or https:// URL", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("chunkstore: no bucket")
	}
	if cfg.Tenant == "" {
		cfg.Tenant = "default"
	}
	if strings.ContainsAny(cfg.Tenant, "/\\") || cfg.Tenant == "." || cfg.Tenant == ".." {
		return nil, fmt.Errorf("chunkstore: tenant %q may not contain a slash", cfg.Tenant)
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: u.Scheme == "https",
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("chunkstore: %w", err)
	}
	return &S3{c: c, bucket: cfg.Bucket, tenant: cfg.Tenant}, nil
}

// Key is the object key of a chunk's relative key (<date>/<device>/<chunk>.ndjson.gz).
func (s *S3) Key(rel string) string { return s.tenant + "/" + path.Clean("/" + rel)[1:] }

// Put stores a chunk. An object written twice (a retried upload whose
// aggregates were not committed) is simply replaced with the same bytes.
func (s *S3) Put(ctx context.Context, rel string, body io.Reader, size int64) error {
	_, err := s.c.PutObject(ctx, s.bucket, s.Key(rel), body, size, minio.PutObjectOptions{ContentType: "application/gzip"})
	if err != nil {
		return fmt.Errorf("chunkstore: put %s: %w", s.Key(rel), err)
	}
	return nil
}

// Delete removes a chunk past retention; a missing object is not an error.
func (s *S3) Delete(ctx context.Context, rel string) error {
	if err := s.c.RemoveObject(ctx, s.bucket, s.Key(rel), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("chunkstore: delete %s: %w", s.Key(rel), err)
	}
	return nil
}

// Get opens a stored chunk (hunting and device timelines read them through
// it: console/rawchunk). A missing object (deleted past retention) is an
// error wrapping fs.ErrNotExist.
func (s *S3) Get(ctx context.Context, rel string) (io.ReadCloser, error) {
	o, err := s.c.GetObject(ctx, s.bucket, s.Key(rel), minio.GetObjectOptions{})
	if err == nil {
		if _, err = o.Stat(); err != nil {
			o.Close()
		}
	}
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, fmt.Errorf("chunkstore: get %s: %w", s.Key(rel), fs.ErrNotExist)
		}
		return nil, fmt.Errorf("chunkstore: get %s: %w", s.Key(rel), err)
	}
	return o, nil
}

// EnsureBucket makes the bucket when it does not exist (at start).
func (s *S3) EnsureBucket(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("chunkstore: bucket %s: %w", s.bucket, err)
	}
	if !ok {
		if err := s.c.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{}); err != nil {
			return fmt.Errorf("chunkstore: make bucket %s: %w", s.bucket, err)
		}
	}
	return nil
}
