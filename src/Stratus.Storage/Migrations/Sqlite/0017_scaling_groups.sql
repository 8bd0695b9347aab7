-- Scaling groups (issue 10): a member template, bounds, policies and schedules (spec), and the loop's
-- runtime view (members, draining members, status, events) as JSON documents; every write
-- compare-and-swaps on version. Names are unique per project, like servers.
CREATE TABLE scaling_groups (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  name TEXT NOT NULL,
  server_group_id TEXT NOT NULL,
  spec TEXT NOT NULL,
  state TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (project_id, name)
);
