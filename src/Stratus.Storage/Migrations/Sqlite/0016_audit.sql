-- The audit log: every state-changing request, hash-chained (see Stratus.Core.Audit.AuditEntry).
CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  project TEXT,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  target TEXT,
  status INTEGER NOT NULL,
  source TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
