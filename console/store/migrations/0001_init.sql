-- netward console schema, version 1. One schema for SQLite and PostgreSQL:
-- {{ID}} is the auto-increment key and {{BLOB}} the byte string of each
-- dialect; times are Unix milliseconds (0: none), hours are Unix seconds of
-- the hour's start, so both stores compare and index them the same way.

CREATE TABLE accounts (
  id {{ID}},
  name TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  password_changed_at BIGINT NOT NULL
);

CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  csrf TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id);

CREATE TABLE api_tokens (
  id {{ID}},
  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  last_used_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE enrollment_keys (
  id {{ID}},
  name TEXT NOT NULL,
  key_hash TEXT NOT NULL UNIQUE,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT NOT NULL DEFAULT 0,
  uses BIGINT NOT NULL DEFAULT 0,
  last_used_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  enrollment_key_id BIGINT NOT NULL,
  enrolled_at BIGINT NOT NULL,
  revoked_at BIGINT NOT NULL DEFAULT 0,
  revoked_by TEXT NOT NULL DEFAULT '',
  last_seen_at BIGINT NOT NULL DEFAULT 0,
  last_address TEXT NOT NULL DEFAULT '',
  checkin_known INTEGER NOT NULL DEFAULT 0,
  agent_version TEXT NOT NULL DEFAULT '',
  os_platform TEXT NOT NULL DEFAULT '',
  os_version TEXT NOT NULL DEFAULT '',
  sequence_held BIGINT NOT NULL DEFAULT 0,
  last_chunk_at BIGINT NOT NULL DEFAULT 0,
  info_at BIGINT NOT NULL DEFAULT 0,
  logged_on_users TEXT NOT NULL DEFAULT ''
);
CREATE INDEX devices_last_seen ON devices(last_seen_at);

CREATE TABLE custom_apps (
  id {{ID}},
  name TEXT NOT NULL UNIQUE,
  category TEXT NOT NULL DEFAULT '',
  domains TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE app_tags (
  app_id TEXT PRIMARY KEY,
  tag TEXT NOT NULL,
  updated_by TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE indicators (
  id {{ID}},
  indicator_type TEXT NOT NULL,
  indicator_value TEXT NOT NULL,
  action TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  application TEXT NOT NULL DEFAULT '',
  application_id TEXT NOT NULL DEFAULT '',
  expires_at BIGINT NOT NULL DEFAULT 0,
  bypass_hours DOUBLE PRECISION NOT NULL DEFAULT 0,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (indicator_type, indicator_value)
);

CREATE TABLE settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_by TEXT NOT NULL DEFAULT '',
  updated_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE secrets (
  name TEXT PRIMARY KEY,
  value {{BLOB}} NOT NULL,
  created_at BIGINT NOT NULL
);

-- One signed document per sequence: replicas serve these exact bytes.
CREATE TABLE feed_documents (
  sequence BIGINT PRIMARY KEY,
  version TEXT NOT NULL,
  generated_at BIGINT NOT NULL,
  indicators BIGINT NOT NULL,
  body {{BLOB}} NOT NULL
);

CREATE TABLE chunks (
  device_id TEXT NOT NULL,
  chunk_id TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  compressed_bytes BIGINT NOT NULL,
  records BIGINT NOT NULL,
  received_at BIGINT NOT NULL,
  path TEXT NOT NULL,
  PRIMARY KEY (device_id, chunk_id)
);
CREATE INDEX chunks_received ON chunks(received_at);

-- Aggregates per device × hour × app × domain. app_id '' is a domain no
-- catalog app claims (discovery candidates); domain '' a record without one.
CREATE TABLE traffic_hourly (
  device_id TEXT NOT NULL,
  hour BIGINT NOT NULL,
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
  PRIMARY KEY (device_id, hour, app_id, domain)
);
CREATE INDEX traffic_hourly_hour ON traffic_hourly(hour);
CREATE INDEX traffic_hourly_app ON traffic_hourly(app_id, hour);

-- Distinct users per device × hour × app × domain (count the rows).
CREATE TABLE traffic_hourly_users (
  device_id TEXT NOT NULL,
  hour BIGINT NOT NULL,
  app_id TEXT NOT NULL,
  domain TEXT NOT NULL,
  user_name TEXT NOT NULL,
  PRIMARY KEY (device_id, hour, app_id, domain, user_name)
);

-- Every ActionType a device sent per hour, known or not (forward
-- compatibility: a newer agent's records are counted, never refused).
CREATE TABLE actions_hourly (
  device_id TEXT NOT NULL,
  hour BIGINT NOT NULL,
  action_type TEXT NOT NULL,
  records BIGINT NOT NULL,
  PRIMARY KEY (device_id, hour, action_type)
);

CREATE TABLE device_users (
  device_id TEXT NOT NULL,
  user_name TEXT NOT NULL,
  first_seen BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  PRIMARY KEY (device_id, user_name)
);

CREATE TABLE device_addresses (
  device_id TEXT NOT NULL,
  address TEXT NOT NULL,
  interface TEXT NOT NULL DEFAULT '',
  mac TEXT NOT NULL DEFAULT '',
  first_seen BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  PRIMARY KEY (device_id, address)
);

CREATE TABLE audit_log (
  id {{ID}},
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log(at);
