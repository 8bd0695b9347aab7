-- Incremental backups (issue 7 item 5): chains, verification state and retention that keeps what incrementals need.
-- backups.status gains 'expired': deleted by request or by retention, its files kept only because a kept incremental
-- builds on it; the row and directory go with its last dependant.
ALTER TABLE backups ADD COLUMN full_reason TEXT;     -- a full written although an incremental was asked for: why
ALTER TABLE backups ADD COLUMN expired_reason TEXT;  -- for status 'expired': deleted by request, or beyond the keep count
ALTER TABLE backups ADD COLUMN verified_at TEXT;     -- last time the controller checked every checksum of this backup
ALTER TABLE backups ADD COLUMN verify_error TEXT;    -- null with verified_at set: intact then; else what was wrong
CREATE INDEX backups_parent ON backups(parent_id);
-- A full backup at least every full_every backups (the chain length cap); null = the keep count.
ALTER TABLE backup_policies ADD COLUMN full_every INTEGER;
