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
-- Pruning hour buckets and retention delete by bucket, which the old key
-- led with: a B-tree on bucket keeps those deletes a range scan. (A BRIN
-- index was tried: its ranges never narrow again after a prune, and vacuum
-- hands the freed pages to new rows, so the next hourly prune read half
-- the table's pages — review of stop 31.) New rows go to two places of it
-- (this hour's and today's bucket), and counter updates leave it alone.
--
-- The new key is built under an exclusive lock on the table, inside this
-- migration's transaction: 14.6 s for 5.5 M rows (2 GB) measured. A
-- replica of the earlier version waits meanwhile (its uploads are retried
-- by the agents); docs/scale.md "Upgrading".
ALTER TABLE roll_app_device DROP CONSTRAINT roll_app_device_pkey;
ALTER TABLE roll_app_device ADD PRIMARY KEY (device_id, span, bucket, app_id, domain);
DROP INDEX roll_app_device_device;
CREATE INDEX roll_app_device_bucket ON roll_app_device (bucket);
