-- Resize: the live ceilings a server was started with (0 = its flavor's size, no hot-add) and, while a cold resize
-- waits for confirm or revert (OpenStack's VERIFY_RESIZE), the size it had before (JSON, null otherwise).
ALTER TABLE instances ADD COLUMN max_vcpus INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN max_mem_mib INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN pending_resize TEXT;
