-- When the device's current run of check-ins began: a check-in after a
-- silence longer than the feed's offline threshold (2 x feed.maxWaitSeconds
-- plus the check-in interval) starts a new run. The "not blocked" alert
-- reads it, so records a device made while it could not reach the console
-- (a laptop offline when an app was tagged Unsanctioned, uploaded when it
-- came back) do not raise it; 0 is "since before this was recorded".
ALTER TABLE devices ADD COLUMN online_since BIGINT NOT NULL DEFAULT 0;
