package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// ingestBatch is IngestChunk on PostgreSQL: the chunk's row, its
// aggregates, rollups, pending fleet-wide rows and the device's update go
// to the server as one pgx batch — one pipeline of statements ended by a
// single Sync, so one round trip per chunk instead of one per statement
// (~12, each with the console and PostgreSQL waking each other up;
// docs/scale.md "Third round").
//
// The batch is one transaction: PostgreSQL runs the statements before a
// Sync in an implicit transaction, committed at the Sync if all of them
// succeeded and rolled back, the rest skipped, at the first that fails
// (TestIngestBatchIsAtomic). No BEGIN/COMMIT is sent: each would be a round
// trip of its own.
//
// The chunk's row is a plain INSERT: ingest has already looked the id up
// (ingest.already), so the row is new but for a race with a retry of the
// same chunk on another replica, which the primary key refuses; the batch
// then stores nothing and the stored row says which error it is.
func (s *Store) ingestBatch(ctx context.Context, b *ChunkBatch) error {
	m := b.Meta
	q := &pgQueue{}
	q.queue("INSERT INTO chunks (device_id, chunk_id, sha256, compressed_bytes, records, received_at, path, first_hour) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		m.DeviceID, m.ChunkID, m.SHA256, m.CompressedBytes, m.Records, ms(m.ReceivedAt), m.Path, b.firstHour())
	if err := s.writeChunk(ctx, q, b); err != nil {
		return err
	}
	err := s.sendBatch(ctx, &q.batch)
	if isChunkRow(err) {
		return s.storedChunk(ctx, s.r, m)
	}
	if err != nil {
		return fmt.Errorf("store: chunk %s/%s: %w", m.DeviceID, m.ChunkID, err)
	}
	return nil
}

// sendBatch sends a batch on one connection of the pool and reads every
// result; the first error is returned.
func (s *Store) sendBatch(ctx context.Context, b *pgx.Batch) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: PostgreSQL connection is a %T, not pgx's", dc)
		}
		useFastArrays(c.Conn().TypeMap()) // the batch's arrays (pgarrays.go)
		return c.Conn().SendBatch(ctx, b).Close()
	})
}

// isChunkRow reports the chunks primary key refusing a chunk id already
// stored.
func isChunkRow(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.TableName == "chunks"
}

// pgQueue is an execer that queues statements in a pgx batch instead of
// running them. The arguments are encoded when the batch is sent, so they
// must not change until then (the writers build fresh slices).
type pgQueue struct {
	batch pgx.Batch
}

func (p *pgQueue) queue(query string, args ...any) { p.batch.Queue(query, args...) }

// ExecContext queues query; its result is only known once the batch is
// sent, so the sql.Result refuses to tell.
func (p *pgQueue) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	p.queue(query, args...)
	return queuedResult{}, nil
}

type queuedResult struct{}

var errQueued = errors.New("store: statement queued in a batch; no result before it is sent")

func (queuedResult) LastInsertId() (int64, error) { return 0, errQueued }
func (queuedResult) RowsAffected() (int64, error) { return 0, errQueued }
