CREATE TABLE server_groups (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  policy TEXT NOT NULL,
  max_per_host INTEGER NOT NULL,
  generation INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1
);
ALTER TABLE instances ADD COLUMN group_id TEXT;
CREATE INDEX instances_group ON instances(group_id) WHERE group_id IS NOT NULL;
