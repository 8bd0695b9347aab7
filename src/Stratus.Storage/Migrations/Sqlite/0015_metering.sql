-- Metering and billing: usage intervals (opened and closed in the same transaction as the lifecycle write that
-- causes them), price sheets as data, and per-project budgets.
CREATE TABLE usage_intervals (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  instance_id TEXT NOT NULL,
  instance_name TEXT NOT NULL,
  project_id TEXT NOT NULL,
  flavor_id TEXT NOT NULL,
  flavor_name TEXT NOT NULL,
  cpu_milli INTEGER NOT NULL,       -- the allocation's resources during the interval
  mem_mib INTEGER NOT NULL,
  disk_gib INTEGER NOT NULL,
  state TEXT NOT NULL,              -- running | stopped
  started_at TEXT NOT NULL,         -- ISO 8601 UTC ("O" format, so text order is time order)
  ended_at TEXT                     -- null while open
);
-- At most one open interval per server: usage can never be counted twice.
CREATE UNIQUE INDEX usage_intervals_open ON usage_intervals(instance_id) WHERE ended_at IS NULL;
CREATE INDEX usage_intervals_project ON usage_intervals(project_id, started_at);
CREATE TABLE price_sheets (
  effective_from TEXT PRIMARY KEY,  -- in effect from here until the next sheet
  currency TEXT NOT NULL,
  vcpu_hour TEXT NOT NULL,          -- decimal prices as invariant text (exact)
  memory_gib_hour TEXT NOT NULL,
  disk_gib_hour TEXT NOT NULL,
  flavor_hour TEXT NOT NULL,        -- JSON object: flavor name -> price per flavor-hour (text)
  created_at TEXT NOT NULL
);
-- The default sheet (PriceSheet.Default): in effect from the beginning.
INSERT INTO price_sheets(effective_from, currency, vcpu_hour, memory_gib_hour, disk_gib_hour, flavor_hour, created_at)
VALUES ('1970-01-01T00:00:00.0000000+00:00', 'USD', '0.02', '0.005', '0.0001', '{}', '1970-01-01T00:00:00.0000000+00:00');
CREATE TABLE budgets (
  project_id TEXT PRIMARY KEY,
  amount TEXT NOT NULL,             -- per calendar month (UTC), in the price sheet's currency
  warn_percent INTEGER NOT NULL,
  block INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 1,
  updated_at TEXT NOT NULL
);
