-- The app drawer's machines and users (Store.App) read one app's rows of a
-- period through roll_app_device_app and roll_app_user_app. Their entries
-- held the key only, so every one of the ~29,000 rows of a popular app over
-- 30 days on 1,000 devices was a second b-tree search into the table for
-- its counters. Carrying the counters in the index (SQLite has no INCLUDE:
-- trailing columns do the same) reads them in index order: one app's
-- machines 33 -> 13 ms, users 22 -> 8 ms of CPU in the sqlite3 shell on the
-- generated fleet (about 2x in a busier repeat), for +40 MB of device index
-- on a 4.6 GB store (docs/console.md). SQLite only: on PostgreSQL a
-- counter in an index would stop the in-place (HOT) updates migration 0031
-- set up for, and its index-only scans need a vacuumed visibility map.
DROP INDEX roll_app_device_app;
CREATE INDEX roll_app_device_app ON roll_app_device(app_id, span, bucket, device_id,
  transactions, bytes_sent, bytes_received, blocks, warns, bypasses, audits, failures, last_hour);
DROP INDEX roll_app_user_app;
CREATE INDEX roll_app_user_app ON roll_app_user(app_id, span, bucket, user_name, bypassed);
