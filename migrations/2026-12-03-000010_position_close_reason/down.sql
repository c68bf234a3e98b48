ALTER TABLE positions DROP COLUMN close_reason;
