CREATE TABLE placement_decisions (
  instance_id TEXT PRIMARY KEY,
  decided_at TEXT NOT NULL,
  trace TEXT NOT NULL
);
