-- High availability: per-server policy and the incident log of host failures.
ALTER TABLE instances ADD COLUMN ha INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN ha_priority INTEGER NOT NULL DEFAULT 0;
CREATE TABLE incidents (
  id TEXT PRIMARY KEY,
  host_id TEXT NOT NULL,
  state TEXT NOT NULL,
  detected_at TEXT NOT NULL,
  closed_at TEXT,
  timeline TEXT NOT NULL
);
CREATE INDEX incidents_host ON incidents(host_id);
