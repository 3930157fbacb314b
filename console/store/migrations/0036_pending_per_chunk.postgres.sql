-- One pending row per chunk, not one per key (PostgreSQL).
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
  last_hour BIGINT[] NOT NULL
);

CREATE TABLE IF NOT EXISTS roll_app_user_chunk_pending (
  span BIGINT[] NOT NULL,
  bucket BIGINT[] NOT NULL,
  app_id TEXT[] NOT NULL,
  domain TEXT[] NOT NULL,
  user_name TEXT[] NOT NULL,
  bypassed BIGINT[] NOT NULL
);
