-- When the device's current run of check-ins began, and its previous run's
-- first and last check-in: a check-in after a silence longer than the
-- feed's offline threshold starts a new run. The "not blocked" alert reads
-- them: a record counts only if the device had checked in between the
-- tag's publication and the record, so records a device made while it
-- could not reach the console (a laptop offline when an app was tagged
-- Unsanctioned, uploaded when it came back) do not raise it, and records
-- it made online before a gap still do. 0 is "before this was recorded".
ALTER TABLE devices ADD COLUMN online_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN prev_online_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN prev_last_seen BIGINT NOT NULL DEFAULT 0;
