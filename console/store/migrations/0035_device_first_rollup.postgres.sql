-- roll_app_device by device first (PostgreSQL; docs/scale.md "Fifth round").
--
-- Its primary key began with the bucket and app, so the chunks of every
-- device upserted into the same leaf pages of it (and of the app index)
-- at once, and a chunk's rows, one device's, were scattered over the
-- whole key range: the most expensive statement of a chunk (~50 µs a
-- row). Keyed by device first, a chunk's rows are one range of the
-- primary key, and the key serves the machine view's reads (device,
-- span, bucket), so roll_app_device_device goes: one index fewer to keep
-- on every insert and non-HOT update. ON CONFLICT names the same columns,
-- in any order. The app index stays for the app view's machines.
--
-- Pruning hour buckets and retention delete by span and bucket, which
-- the old key led with; a BRIN index on bucket (rows are written in time
-- order; a few pages of summary, nothing to update for rows appended to
-- the table's end) keeps those deletes from reading the whole table.
ALTER TABLE roll_app_device DROP CONSTRAINT roll_app_device_pkey;
ALTER TABLE roll_app_device ADD PRIMARY KEY (device_id, span, bucket, app_id, domain);
DROP INDEX roll_app_device_device;
CREATE INDEX roll_app_device_bucket ON roll_app_device USING brin (bucket);
