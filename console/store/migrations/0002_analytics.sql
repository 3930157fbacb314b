-- netward console schema, version 2: discovery rollups, the hunting index,
-- alerts and their delivery, discovery policies. Buckets are Unix seconds
-- of the bucket's start; span is the bucket's length (3600: an hour, kept
-- for the last days only; 86400: a UTC day), so one query serves both.
-- The key of an app rollup is the catalog app, or, for traffic no app
-- claims (app_id ''), the domain: candidates for custom apps.

CREATE TABLE roll_app (
  span BIGINT NOT NULL,
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
  PRIMARY KEY (span, bucket, app_id, domain)
);
CREATE INDEX roll_app_app ON roll_app(app_id, span, bucket);

-- domain is '' for catalog apps, the domain for traffic no app claims.
CREATE TABLE roll_app_device (
  span BIGINT NOT NULL,
  bucket BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  device_id TEXT NOT NULL,
  transactions BIGINT NOT NULL,
  bytes_sent BIGINT NOT NULL,
  bytes_received BIGINT NOT NULL,
  blocks BIGINT NOT NULL,
  warns BIGINT NOT NULL,
  bypasses BIGINT NOT NULL,
  audits BIGINT NOT NULL,
  failures BIGINT NOT NULL,
  last_hour BIGINT NOT NULL,
  PRIMARY KEY (span, bucket, app_id, domain, device_id)
);
CREATE INDEX roll_app_device_app ON roll_app_device(app_id, span, bucket, device_id);
CREATE INDEX roll_app_device_device ON roll_app_device(device_id, span, bucket);

CREATE TABLE roll_app_user (
  span BIGINT NOT NULL,
  bucket BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  user_name TEXT NOT NULL,
  bypassed INTEGER NOT NULL,
  PRIMARY KEY (span, bucket, app_id, domain, user_name)
);
CREATE INDEX roll_app_user_app ON roll_app_user(app_id, span, bucket, user_name);

CREATE TABLE roll_device (
  span BIGINT NOT NULL,
  bucket BIGINT NOT NULL,
  device_id TEXT NOT NULL,
  transactions BIGINT NOT NULL,
  bytes_sent BIGINT NOT NULL,
  bytes_received BIGINT NOT NULL,
  blocks BIGINT NOT NULL,
  warns BIGINT NOT NULL,
  bypasses BIGINT NOT NULL,
  audits BIGINT NOT NULL,
  failures BIGINT NOT NULL,
  last_hour BIGINT NOT NULL,
  PRIMARY KEY (span, bucket, device_id)
);
CREATE INDEX roll_device_device ON roll_device(device_id, span, bucket);

-- Hunting: domain (labels reversed, "com.example.www", byte order so a
-- domain and its subdomains are one range) × hour × device → the chunk
-- holding its records.
CREATE TABLE hunt_index (
  rdomain {{CTEXT}} NOT NULL,
  hour BIGINT NOT NULL,
  device_id TEXT NOT NULL,
  chunk_id TEXT NOT NULL,
  records BIGINT NOT NULL,
  PRIMARY KEY (rdomain, hour, device_id, chunk_id)
);
CREATE INDEX chunks_device_received ON chunks(device_id, received_at);

CREATE TABLE alerts (
  id {{ID}},
  kind TEXT NOT NULL,
  device_id TEXT NOT NULL,
  app_id TEXT NOT NULL,
  hour BIGINT NOT NULL,
  first_at BIGINT NOT NULL,
  last_at BIGINT NOT NULL,
  occurrences BIGINT NOT NULL,
  domain TEXT NOT NULL,
  user_name TEXT NOT NULL,
  process TEXT NOT NULL,
  action_type TEXT NOT NULL,
  detail TEXT NOT NULL,
  state TEXT NOT NULL,
  acknowledged_by TEXT NOT NULL DEFAULT '',
  acknowledged_at BIGINT NOT NULL DEFAULT 0,
  UNIQUE (kind, device_id, app_id, hour)
);
CREATE INDEX alerts_first ON alerts(first_at);
CREATE INDEX alerts_device ON alerts(device_id, first_at);

CREATE TABLE alert_destinations (
  id {{ID}},
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  url TEXT NOT NULL DEFAULT '',
  secret TEXT NOT NULL DEFAULT '',
  network TEXT NOT NULL DEFAULT '',
  address TEXT NOT NULL DEFAULT '',
  enabled INTEGER NOT NULL DEFAULT 1,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

-- The outbox: one row per alert × destination until delivered or given up.
CREATE TABLE alert_deliveries (
  alert_id BIGINT NOT NULL,
  destination_id BIGINT NOT NULL,
  state TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_at BIGINT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  delivered_at BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (alert_id, destination_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(state, next_at);

CREATE TABLE discovery_policies (
  id {{ID}},
  name TEXT NOT NULL UNIQUE,
  category TEXT NOT NULL DEFAULT '',
  name_pattern TEXT NOT NULL DEFAULT '',
  min_users BIGINT NOT NULL DEFAULT 0,
  min_bytes BIGINT NOT NULL DEFAULT 0,
  min_transactions BIGINT NOT NULL DEFAULT 0,
  period_days BIGINT NOT NULL,
  tag TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_run_at BIGINT NOT NULL DEFAULT 0
);

-- Every tag a policy set, with its reason; reverted_at <> 0 once undone
-- (and the policy never sets it on that app again).
CREATE TABLE auto_tags (
  id {{ID}},
  app_id TEXT NOT NULL,
  policy_id BIGINT NOT NULL,
  policy_name TEXT NOT NULL,
  tag TEXT NOT NULL,
  previous_tag TEXT NOT NULL,
  reason TEXT NOT NULL,
  applied_at BIGINT NOT NULL,
  reverted_at BIGINT NOT NULL DEFAULT 0,
  reverted_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX auto_tags_app ON auto_tags(app_id, policy_id);

-- Presence bitmaps: which devices (users) used an app in which buckets,
-- 32 buckets per row (bit n of block b is bucket b*32+n, buckets counted
-- in span units since the epoch). Distinct machines and users over a
-- period then read a row per app × device × block instead of one per
-- bucket (a month of days is two blocks, not thirty buckets).
CREATE TABLE presence_app_device (
  span BIGINT NOT NULL,
  block BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  device_id TEXT NOT NULL,
  bits BIGINT NOT NULL,
  PRIMARY KEY (span, block, app_id, domain, device_id)
);

CREATE TABLE presence_app_user (
  span BIGINT NOT NULL,
  block BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  user_name TEXT NOT NULL,
  bits BIGINT NOT NULL,
  bypass_bits BIGINT NOT NULL,
  PRIMARY KEY (span, block, app_id, domain, user_name)
);

-- Hunting per day: the fleet-wide device summary reads a row per domain ×
-- device × day; the hour index is read only for hours whose raw chunks
-- are still kept.
CREATE TABLE hunt_daily (
  rdomain {{CTEXT}} NOT NULL,
  day BIGINT NOT NULL,
  device_id TEXT NOT NULL,
  records BIGINT NOT NULL,
  first_hour BIGINT NOT NULL,
  last_hour BIGINT NOT NULL,
  PRIMARY KEY (rdomain, day, device_id)
);
