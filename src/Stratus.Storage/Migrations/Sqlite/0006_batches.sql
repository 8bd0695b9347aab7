ALTER TABLE instances ADD COLUMN batch_id TEXT;
ALTER TABLE instances ADD COLUMN batch_all_or_nothing INTEGER NOT NULL DEFAULT 0;
