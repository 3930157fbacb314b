-- Cheaper ingest writes on PostgreSQL (docs/scale.md "Third round").
--
-- The pending tables are appended to and emptied by FoldRollups' DELETE
-- … RETURNING *: nothing reads them by row, so the surrogate id and its
-- primary-key index were one index insert per pending row for nothing.
ALTER TABLE roll_app_pending DROP COLUMN id;
ALTER TABLE roll_app_user_pending DROP COLUMN id;
ALTER TABLE presence_app_user_pending DROP COLUMN id;

-- No query reads traffic_hourly by app (the app views read the rollups;
-- DeviceTraffic seeks the primary key, compaction the hour index), and
-- every upsert of a traffic row kept this index up to date, or made the
-- update non-HOT.
DROP INDEX traffic_hourly_app;

-- The tables every chunk upserts: room on each page for the updated row
-- version, so PostgreSQL updates in place on the page (HOT: no new index
-- entries when no indexed column changes, which is every counter update).
-- (hunt_index is left out: its rows are keyed by chunk, so inserted once.)
-- Applies to pages written from now on; existing pages fill as before.
ALTER TABLE traffic_hourly SET (fillfactor = 70);
ALTER TABLE actions_hourly SET (fillfactor = 70);
ALTER TABLE device_users SET (fillfactor = 70);
ALTER TABLE device_addresses SET (fillfactor = 70);
ALTER TABLE devices SET (fillfactor = 70);
ALTER TABLE roll_app_device SET (fillfactor = 70);
ALTER TABLE roll_device SET (fillfactor = 70);
ALTER TABLE presence_app_device SET (fillfactor = 70);
ALTER TABLE hunt_daily SET (fillfactor = 70);
ALTER TABLE roll_app SET (fillfactor = 70);
ALTER TABLE roll_app_user SET (fillfactor = 70);
ALTER TABLE presence_app_user SET (fillfactor = 70);
