ALTER TABLE hosts ADD COLUMN traits TEXT;
ALTER TABLE instances ADD COLUMN traits TEXT;
CREATE TABLE aggregates (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  zone TEXT,
  metadata TEXT NOT NULL,
  created_at TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE aggregate_hosts (
  aggregate_id TEXT NOT NULL,
  host_id TEXT NOT NULL,
  PRIMARY KEY (aggregate_id, host_id)
);
