-- The Postgres server whose WAL a cursor counts in (its system identifier).
-- Event ids and the cursor are positions in that server's WAL, so walhook's
-- records must not be continued from another server's stream: a state
-- database shared by two installations, or kept while the outbox's server
-- was restored or replaced. NULL until the first start that claims it.
ALTER TABLE stream_cursors ADD COLUMN server_id text;
