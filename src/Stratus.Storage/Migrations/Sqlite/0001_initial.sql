CREATE TABLE flavors (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  vcpus INTEGER NOT NULL,
  ram_mib INTEGER NOT NULL,
  disk_gib INTEGER NOT NULL,
  is_public INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE images (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  disk_format TEXT NOT NULL,
  status TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  checksum TEXT,
  path TEXT,
  is_public INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE hosts (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL,
  total_cpu_milli INTEGER NOT NULL,
  total_mem_mib INTEGER NOT NULL,
  total_disk_gib INTEGER NOT NULL,
  reserved_cpu_milli INTEGER NOT NULL,
  reserved_mem_mib INTEGER NOT NULL,
  reserved_disk_gib INTEGER NOT NULL,
  ratio_cpu_permille INTEGER NOT NULL,
  ratio_ram_permille INTEGER NOT NULL,
  ratio_disk_permille INTEGER NOT NULL,
  used_cpu_milli INTEGER NOT NULL DEFAULT 0,
  used_mem_mib INTEGER NOT NULL DEFAULT 0,
  used_disk_gib INTEGER NOT NULL DEFAULT 0,
  generation INTEGER NOT NULL DEFAULT 1,
  epoch INTEGER NOT NULL DEFAULT 1,
  zone TEXT NOT NULL,
  accelerator TEXT NOT NULL,
  driver TEXT NOT NULL,
  agent_pid INTEGER,
  last_heartbeat TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE instances (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  flavor_id TEXT NOT NULL,
  image_id TEXT NOT NULL,
  host_id TEXT,
  vm_state TEXT NOT NULL,
  task TEXT,
  power_state TEXT NOT NULL,
  cpu_milli INTEGER NOT NULL,
  mem_mib INTEGER NOT NULL,
  disk_gib INTEGER NOT NULL,
  fault TEXT,
  idempotency_key TEXT UNIQUE,
  reboot_seq INTEGER NOT NULL DEFAULT 0,
  user_data TEXT,
  key_name TEXT,
  zone TEXT,
  forwards TEXT,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  task_requested_at TEXT
);
CREATE UNIQUE INDEX instances_live_name ON instances(name) WHERE vm_state <> 'deleted';
CREATE INDEX instances_task ON instances(task) WHERE task IS NOT NULL;
CREATE INDEX instances_host ON instances(host_id) WHERE host_id IS NOT NULL;
CREATE INDEX instances_flavor ON instances(flavor_id);
CREATE INDEX instances_image ON instances(image_id);
CREATE TABLE allocations (
  instance_id TEXT PRIMARY KEY,
  host_id TEXT NOT NULL,
  cpu_milli INTEGER NOT NULL,
  mem_mib INTEGER NOT NULL,
  disk_gib INTEGER NOT NULL
);
CREATE INDEX allocations_host ON allocations(host_id);
CREATE TABLE instance_actions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  instance_id TEXT NOT NULL,
  action TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  result TEXT NOT NULL,
  message TEXT
);
CREATE INDEX instance_actions_instance ON instance_actions(instance_id, seq);
