-- Per-host agent tokens (only their SHA-256 is kept) and in-flight VM migrations.
CREATE TABLE agent_tokens (
  host_name TEXT PRIMARY KEY,
  token_sha256 TEXT NOT NULL,
  created_at TEXT NOT NULL
);
-- One row per server being moved: the destination's claim is held here (and counted in the
-- destination host's used_*) until the move finishes, when it becomes the server's allocation
-- (success) or is given back (rollback).
CREATE TABLE migrations (
  instance_id TEXT PRIMARY KEY,
  source_host_id TEXT NOT NULL,
  dest_host_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  cpu_milli INTEGER NOT NULL,
  mem_mib INTEGER NOT NULL,
  disk_gib INTEGER NOT NULL,
  started_at TEXT NOT NULL
);
ALTER TABLE instances ADD COLUMN storage_pool TEXT NOT NULL DEFAULT 'local';
