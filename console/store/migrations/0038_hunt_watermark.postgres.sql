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
-- moves w forward (to the start of the UTC day two hours ago), waits until
-- every transaction that could have read the old w has ended, then sums
-- the index rows with direct false and an hour in [f, w) per domain, day
-- and device into hunt_daily_folded and sets f = w, in one transaction.
-- So an index row is summed in hunt_daily exactly when it is direct, in
-- hunt_daily_folded exactly when it is not and its hour is before f, and a
-- day-period hunt reads both tables plus the index rows that are in
-- neither (the last 2-26 hours).
--
-- hunt_daily_folded is insert-only (each day is folded once, by the
-- transaction that moves f past it) and apart from hunt_daily: the fold of
-- a large fleet's day is one long transaction, and rows it wrote into
-- hunt_daily would hold every late chunk's upsert of the same domain, day
-- and device until it commits.
--
-- Rows written before this migration, and rows a console of an earlier
-- version writes during a rolling upgrade (it upserts hunt_daily itself
-- and names no `direct`), take the default, true: counted once. An
-- earlier version's day-period hunts read hunt_daily only, so they leave
-- out every chunk an upgraded replica took (folded into hunt_daily_folded
-- or not yet) for as long as the earlier version runs; going back to it
-- after this migration leaves those chunks out of day hunts for good
-- (hour-period hunts, which read hunt_index, still find them).
--
-- ADD COLUMN with a constant default rewrites nothing (PostgreSQL 11+).
-- The BRIN index finds the fold's hours in an insert-only table written in
-- time order, at a few pages per thousand of the table. It is on the hour
-- number (hour / 3600), which only the fold's statement names: on the
-- hour itself the planner took it for hunts over a range of names and a
-- few hours (a scan of every row of those hours), where the (rdomain,
-- hour) index reads only the names' rows (TestHuntIndexInsertOnlyMigration).
ALTER TABLE hunt_index ADD COLUMN direct BOOLEAN NOT NULL DEFAULT true;
CREATE INDEX hunt_index_fold ON hunt_index USING brin ((hour / 3600));
CREATE TABLE hunt_daily_folded (
  rdomain TEXT COLLATE "C" NOT NULL,
  day BIGINT NOT NULL,
  device_id TEXT NOT NULL,
  records BIGINT NOT NULL,
  first_hour BIGINT NOT NULL,
  last_hour BIGINT NOT NULL
);
CREATE INDEX hunt_daily_folded_domain ON hunt_daily_folded (rdomain, day);
CREATE TABLE hunt_watermark (
  one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
  w BIGINT NOT NULL,
  f BIGINT NOT NULL CHECK (f <= w)
);
-- Both start where the fold would put them now (the start of the UTC day
-- two hours ago): nothing before them waits for a fold.
INSERT INTO hunt_watermark (w, f)
SELECT d, d FROM (SELECT CAST(floor((extract(epoch FROM now()) - 7200) / 86400) AS BIGINT) * 86400 AS d) AS t;
