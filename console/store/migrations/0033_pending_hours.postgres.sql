-- Fewer pending rows per chunk (PostgreSQL; docs/scale.md "Fourth round").
--
-- A chunk appended each fleet-wide row twice (its hour bucket and its day
-- bucket) and the users' presence bits once more, though a user row of a
-- bucket says the same as its presence bit. These tables take one row per
-- bucket, its hour's while hour buckets are kept (its day's before), and
-- FoldRollups adds each hour row to its day and sets the presence bits
-- from the user rows. The tables of 0030 stay, folded as before, for rows
-- a console of an earlier version appends while replicas are upgraded.
CREATE TABLE IF NOT EXISTS roll_app_hour_pending (
  span BIGINT NOT NULL,
  bucket BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  transactions BIGINT NOT NULL,
  bytes_sent BIGINT NOT NULL,
  bytes_received BIGINT NOT NULL,
  blocks BIGINT NOT NULL,
  warns BIGINT NOT NULL,
  bypasses BIGINT NOT NULL,
  audits BIGINT NOT NULL,
  failures BIGINT NOT NULL,
  last_hour BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS roll_app_user_hour_pending (
  span BIGINT NOT NULL,
  bucket BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  user_name TEXT NOT NULL,
  bypassed BIGINT NOT NULL
);
