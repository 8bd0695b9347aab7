-- Snapshots (kept inside the VM's disk by the driver; one row each so the API can list them while the host is down)
-- and backups (directories in the backup store, each with a checksummed manifest).
CREATE TABLE snapshots (
  instance_id TEXT NOT NULL,
  name TEXT NOT NULL,
  with_memory INTEGER NOT NULL,
  status TEXT NOT NULL,             -- creating | available | reverting | deleting | error
  vm_state_bytes INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  PRIMARY KEY (instance_id, name)
);
CREATE TABLE backups (
  id TEXT PRIMARY KEY,
  instance_id TEXT NOT NULL,
  instance_name TEXT NOT NULL,
  flavor_id TEXT NOT NULL,
  image_id TEXT NOT NULL,
  kind TEXT NOT NULL,               -- full | incremental
  parent_id TEXT,                   -- the backup an incremental builds on (chain parent)
  status TEXT NOT NULL,             -- creating | available | error
  directory TEXT NOT NULL,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  manifest_sha256 TEXT,             -- SHA-256 of manifest.json as written (the manifest has each file's)
  spec_json TEXT NOT NULL,          -- what a restore re-creates: key name, user data, forwards, storage pool
  error TEXT,
  created_at TEXT NOT NULL,
  finished_at TEXT
);
CREATE INDEX backups_instance ON backups(instance_id, created_at);
-- Retention: keep the newest N available backups of a server (servers without a row use the controller's default).
CREATE TABLE backup_policies (
  instance_id TEXT PRIMARY KEY,
  keep INTEGER NOT NULL
);
