-- Hypertables cannot be turned back into plain tables in place; nothing to undo on
-- plain PostgreSQL. The initial schema's down migration drops the tables.
SELECT 1;
