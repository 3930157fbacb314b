-- One pending row per chunk, not one per key (PostgreSQL; docs/scale.md
-- "Ninth round").
--
-- A chunk appended its share of the fleet-wide rollups as one row per app
-- × domain × bucket and one per user (migration 0033), and the fold
-- deleted each again: ~740 of the ~1,500 row writes per 1,000 telemetry
-- records (docs/scale.md "Eighth round"), each with its tuple header, its
-- WAL record and, at the fold, its dead tuple to vacuum. These tables take
-- the same columns as arrays, element i of every array being one row of
-- 0033's tables: one row per chunk, unnested by the fold. The arrays of a
-- large chunk are stored out of line (TOAST), in ~2 kB pieces, still a
-- small fraction of the rows they replace.
--
-- The checks keep a row whose arrays differ in length or hold a NULL out
-- at the chunk's ingest: unnested, it would give NULL keys or counters
-- that roll_app refuses, and fail every fold (and every view, which folds
-- first) until removed by hand. 0033's NOT NULL columns did that per row.
--
-- The tables of 0033 and 0030 stay, folded as before, for rows a console
-- of an earlier version appends while replicas are upgraded (whose views
-- fold only those: docs/scale.md "Upgrading across migrations 0036 and
-- 0037").
CREATE TABLE IF NOT EXISTS roll_app_chunk_pending (
  span BIGINT[] NOT NULL,
  bucket BIGINT[] NOT NULL,
  app_id TEXT[] NOT NULL,
  domain TEXT[] NOT NULL,
  transactions BIGINT[] NOT NULL,
  bytes_sent BIGINT[] NOT NULL,
  bytes_received BIGINT[] NOT NULL,
  blocks BIGINT[] NOT NULL,
  warns BIGINT[] NOT NULL,
  bypasses BIGINT[] NOT NULL,
  audits BIGINT[] NOT NULL,
  failures BIGINT[] NOT NULL,
  last_hour BIGINT[] NOT NULL,
  CONSTRAINT roll_app_chunk_pending_rows CHECK (
    cardinality(bucket) = cardinality(span) AND
    cardinality(app_id) = cardinality(span) AND
    cardinality(domain) = cardinality(span) AND
    cardinality(transactions) = cardinality(span) AND
    cardinality(bytes_sent) = cardinality(span) AND
    cardinality(bytes_received) = cardinality(span) AND
    cardinality(blocks) = cardinality(span) AND
    cardinality(warns) = cardinality(span) AND
    cardinality(bypasses) = cardinality(span) AND
    cardinality(audits) = cardinality(span) AND
    cardinality(failures) = cardinality(span) AND
    cardinality(last_hour) = cardinality(span) AND
    array_position(span, NULL) IS NULL AND
    array_position(bucket, NULL) IS NULL AND
    array_position(app_id, NULL) IS NULL AND
    array_position(domain, NULL) IS NULL AND
    array_position(transactions, NULL) IS NULL AND
    array_position(bytes_sent, NULL) IS NULL AND
    array_position(bytes_received, NULL) IS NULL AND
    array_position(blocks, NULL) IS NULL AND
    array_position(warns, NULL) IS NULL AND
    array_position(bypasses, NULL) IS NULL AND
    array_position(audits, NULL) IS NULL AND
    array_position(failures, NULL) IS NULL AND
    array_position(last_hour, NULL) IS NULL)
);

CREATE TABLE IF NOT EXISTS roll_app_user_chunk_pending (
  span BIGINT[] NOT NULL,
  bucket BIGINT[] NOT NULL,
  app_id TEXT[] NOT NULL,
  domain TEXT[] NOT NULL,
  user_name TEXT[] NOT NULL,
  bypassed BIGINT[] NOT NULL,
  CONSTRAINT roll_app_user_chunk_pending_rows CHECK (
    cardinality(bucket) = cardinality(span) AND
    cardinality(app_id) = cardinality(span) AND
    cardinality(domain) = cardinality(span) AND
    cardinality(user_name) = cardinality(span) AND
    cardinality(bypassed) = cardinality(span) AND
    array_position(span, NULL) IS NULL AND
    array_position(bucket, NULL) IS NULL AND
    array_position(app_id, NULL) IS NULL AND
    array_position(domain, NULL) IS NULL AND
    array_position(user_name, NULL) IS NULL AND
    array_position(bypassed, NULL) IS NULL)
);
