-- Fleet-wide rollup rows, pending (PostgreSQL; unused on SQLite). Every
-- chunk adds to the same roll_app / roll_app_user / presence_app_user rows,
-- and upserting them in the chunk's transaction held their row locks until
-- its commit: concurrent chunks of the whole fleet waited for one another
-- (docs/scale.md). A chunk's transaction appends its share here instead
-- (insert-only: no lock on a shared row), and FoldRollups moves what is
-- pending into the rollups in one transaction, exactly once.
CREATE TABLE roll_app_pending (
  id {{ID}},
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

CREATE TABLE roll_app_user_pending (
  id {{ID}},
  span BIGINT NOT NULL,
  bucket BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  user_name TEXT NOT NULL,
  bypassed BIGINT NOT NULL
);

CREATE TABLE presence_app_user_pending (
  id {{ID}},
  span BIGINT NOT NULL,
  block BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  user_name TEXT NOT NULL,
  bits BIGINT NOT NULL,
  bypass_bits BIGINT NOT NULL
);
