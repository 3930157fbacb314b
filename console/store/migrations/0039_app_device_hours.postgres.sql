-- A device's app rows of the hours not folded yet apart from
-- roll_app_device (PostgreSQL; docs/scale.md "Thirteenth round").
--
-- Every chunk upserted each of its (app, domain) rows twice in
-- roll_app_device, into its hour's bucket and into its day's: the chunk's
-- most expensive statement (~35 % of PostgreSQL's statement time), and
-- the day row, written by every hourly chunk of the day, was always an
-- update. Now a chunk writes a row of an hour at or after the hunting
-- watermark w (hunt_watermark, migration 0038) only into
-- roll_app_device_hour (with the hour's presence bit for a row it
-- inserted), and store.FoldHuntDays, in the transaction that folds the
-- hunting index, adds the day sums of the rows of [g, w) into
-- roll_app_device (span 86400) with their days' presence bits and sets
-- g = w. A chunk's rows of hours before w (a late chunk) or before the
-- hours kept (HourlyRollupKeep) take the path of before: roll_app_device
-- in both spans (the day only when older). So the table a row went to is
-- whether it was written directly: roll_app_device's day rows hold exactly
-- the direct rows and the folded days, and a day-period view reads them
-- plus roll_app_device_hour's rows at or after g (at most the last ~26
-- hours), an hour-period view both tables' hour rows, in one statement.
--
-- g is its own mark, not the hunting fold's f: a console of the
-- previous version (0038) still folds the hunting index during a rolling
-- upgrade and sets f past days whose roll_app_device_hour rows it does not
-- fold; g is moved by this version's fold only. Consoles of an earlier
-- version keep writing roll_app_device in both spans (counted once: this
-- version's views read roll_app_device too); their views read
-- roll_app_device only, so they leave out the app rows an upgraded replica
-- wrote of the hours not folded yet, for as long as they run (the fleet
-- and per-device totals, roll_app and roll_device, are not affected).
--
-- The key leads with the device, as roll_app_device's (migration 0035): a
-- chunk's rows are one range of it and it serves the machine view; the
-- app index serves an app's machines, the bucket index the fold, the
-- prune and the unfolded hours of the app list's machine counts. Counter
-- updates leave the indexed columns alone: with room on the page
-- (fillfactor 70, as roll_app_device since 0031) they are HOT.
CREATE TABLE roll_app_device_hour (
  device_id TEXT NOT NULL,
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
  last_hour BIGINT NOT NULL,
  PRIMARY KEY (device_id, bucket, app_id, domain)
) WITH (fillfactor = 70);
CREATE INDEX roll_app_device_hour_app ON roll_app_device_hour (app_id, domain, bucket);
CREATE INDEX roll_app_device_hour_bucket ON roll_app_device_hour (bucket);
-- g, the mark up to which the new table's days are in roll_app_device,
-- has a table of its own rather than a column of hunt_watermark: ALTER
-- TABLE hunt_watermark would wait for a running fold's row lock on the
-- watermark (held for the fold's whole transaction, minutes at fleet
-- scale), and every chunk's read of w would queue behind that ALTER —
-- ingest stalled for the length of the fold. A plain read of w waits for
-- nothing. Nothing is in the new table yet: every day before the
-- watermark is whole in roll_app_device, so g starts at w.
CREATE TABLE app_hours_watermark (
  one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
  g BIGINT NOT NULL
);
INSERT INTO app_hours_watermark (g) SELECT w FROM hunt_watermark;
