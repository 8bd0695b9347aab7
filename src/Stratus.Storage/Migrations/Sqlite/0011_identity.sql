-- Tenants: projects with quotas, users, per-project roles, bearer credentials (only their SHA-256),
-- and the owning project of servers, images, keypairs and server groups.
CREATE TABLE projects (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  q_instances INTEGER NOT NULL,
  q_vcpus INTEGER NOT NULL,
  q_ram_mib INTEGER NOT NULL,
  q_disk_gib INTEGER NOT NULL,
  q_snapshots INTEGER NOT NULL,
  q_backups INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
INSERT INTO projects VALUES ('00000000-0000-0000-0000-00000000000a', 'admin', 2147483647, 2147483647, 9223372036854775807, 9223372036854775807, 2147483647, 2147483647, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  password_hash TEXT,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
CREATE TABLE role_assignments (
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  PRIMARY KEY (user_id, project_id)
);
CREATE TABLE credentials (
  id TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL UNIQUE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  name TEXT,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT
);
CREATE INDEX credentials_user ON credentials(user_id);
ALTER TABLE instances ADD COLUMN project_id TEXT NOT NULL DEFAULT '00000000-0000-0000-0000-00000000000a';
DROP INDEX instances_live_name;
CREATE UNIQUE INDEX instances_live_name ON instances(project_id, name) WHERE vm_state <> 'deleted';
CREATE INDEX instances_project ON instances(project_id) WHERE vm_state <> 'deleted';
ALTER TABLE images ADD COLUMN project_id TEXT NOT NULL DEFAULT '00000000-0000-0000-0000-00000000000a';
ALTER TABLE keypairs ADD COLUMN project_id TEXT NOT NULL DEFAULT '00000000-0000-0000-0000-00000000000a';
ALTER TABLE server_groups ADD COLUMN project_id TEXT NOT NULL DEFAULT '00000000-0000-0000-0000-00000000000a';
