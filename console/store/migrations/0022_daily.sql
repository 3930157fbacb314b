-- Aggregates older than the compaction age (30 days by default) are
-- folded from hours into days: same keys with the day's start (Unix
-- seconds) for the hour. Numbered after its issue so that migrations
-- written on parallel branches do not take the same version.

CREATE TABLE traffic_daily (
  device_id TEXT NOT NULL,
  day BIGINT NOT NULL,
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
  PRIMARY KEY (device_id, day, app_id, domain)
);
CREATE INDEX traffic_daily_day ON traffic_daily(day);
CREATE INDEX traffic_daily_app ON traffic_daily(app_id, day);

CREATE TABLE traffic_daily_users (
  device_id TEXT NOT NULL,
  day BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  user_name TEXT NOT NULL,
  PRIMARY KEY (device_id, day, app_id, domain, user_name)
);

CREATE TABLE actions_daily (
  device_id TEXT NOT NULL,
  day BIGINT NOT NULL,
  action_type TEXT NOT NULL,
  records BIGINT NOT NULL,
  PRIMARY KEY (device_id, day, action_type)
);

CREATE INDEX traffic_hourly_users_hour ON traffic_hourly_users(hour);
CREATE INDEX actions_hourly_hour ON actions_hourly(hour);
