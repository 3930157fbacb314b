-- The hunting summary per day (hunt_daily) made by a fold behind a time
-- watermark instead of by an upsert in every chunk's transaction
-- (PostgreSQL; docs/scale.md "Twelfth round").
--
-- Every chunk wrote its domains twice: a row per domain and hour in
-- hunt_index (insert-only since 0037) and an upsert per domain and day in
-- hunt_daily, ~100 row writes per 1,000 records and a tenth of the
-- chunk's statement time. Now a chunk's index rows carry `direct`: true
-- when the chunk also added them to hunt_daily (their hour is before the
-- watermark w: a late chunk), false when it did not. store.FoldHuntDays
-- moves w forward (to two hours before the clock's hour), waits until
-- every transaction that could have read the old w has ended, then adds
-- the index rows with direct false and an hour in [f, w) to hunt_daily and
-- sets f = w, in one transaction. So an index row is in hunt_daily exactly
-- when it is direct or its hour is before f, and a day-period hunt reads
-- hunt_daily plus the index rows that are neither (the last hours only).
--
-- Rows written before this migration, and rows a console of an earlier
-- version writes during a rolling upgrade (it upserts hunt_daily itself
-- and names no `direct`), take the default, true: counted once. An
-- earlier version's day-period hunts leave out the last hours of chunks
-- upgraded replicas took until the fold moves them.
--
-- ADD COLUMN with a constant default rewrites nothing (PostgreSQL 11+).
-- The BRIN index finds one hour range of an insert-only table written in
-- time order, for the fold, at a few pages per thousand of the table. It
-- is on hour / 3600, which only the fold names: on hour itself the
-- planner took it over hunt_index_domain for a domain's hunts over hours
-- and for the rows a day hunt reads that are not folded yet, reading
-- every domain's rows of those hours.
ALTER TABLE hunt_index ADD COLUMN direct BOOLEAN NOT NULL DEFAULT true;
CREATE INDEX hunt_index_hour ON hunt_index USING brin ((hour / 3600));
CREATE TABLE hunt_watermark (
  one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
  w BIGINT NOT NULL,
  f BIGINT NOT NULL CHECK (f <= w)
);
-- Both start two hours before the hour the migration runs in: nothing
-- before them waits for a fold.
INSERT INTO hunt_watermark (w, f)
SELECT h, h FROM (SELECT (CAST(floor(extract(epoch FROM now()) / 3600) AS BIGINT) - 2) * 3600 AS h) AS t;
