-- Time series of resource use (docs/architecture.md, "Metrics"). One row per object, tier and time:
-- resolution 0 = raw samples (ts = sample time), 60 = one-minute buckets, 3600 = one-hour buckets
-- (ts = bucket start). Values of a bucket are averages weighted by `samples`; *_max are the largest
-- raw values it covers. Times are Unix milliseconds (UTC) so buckets are integer arithmetic.
CREATE TABLE metric_samples (
  kind INTEGER NOT NULL,            -- 0 host, 1 server
  object_id TEXT NOT NULL,          -- host id or server id
  resolution INTEGER NOT NULL,      -- seconds per point; 0 = raw
  ts INTEGER NOT NULL,              -- Unix ms
  samples INTEGER NOT NULL,
  cpu_percent REAL NOT NULL,
  cpu_max REAL NOT NULL,
  memory_used_mib REAL NOT NULL,
  memory_max_mib REAL NOT NULL,
  disk_read_bps REAL NOT NULL,
  disk_write_bps REAL NOT NULL,
  net_rx_bps REAL NOT NULL,
  net_tx_bps REAL NOT NULL,
  disk_used_gib REAL NOT NULL,      -- hosts: the data directory's file system; servers: 0
  PRIMARY KEY (kind, object_id, resolution, ts)
) WITHOUT ROWID;
-- Compaction walks a tier by time across every object.
CREATE INDEX metric_samples_tier_ts ON metric_samples(resolution, ts);
