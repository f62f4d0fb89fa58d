-- Per-endpoint retry policy and health, and signals to a running walhook.

-- NULL retry_schedule/max_attempts: the configured defaults apply.
ALTER TABLE endpoints
    ADD COLUMN retry_schedule      text[],
    ADD COLUMN max_attempts        integer CHECK (max_attempts > 0),
    ADD COLUMN retry_client_errors boolean NOT NULL DEFAULT true,
    ADD COLUMN rate_limit          integer CHECK (rate_limit > 0),
    -- Start of the current run of failed attempts (NULL while healthy).
    ADD COLUMN failing_since       timestamptz,
    ADD COLUMN disabled_at         timestamptz;

-- A row here tells a running walhook, through the replication stream, that
-- deliveries were re-queued by hand (CLI or another process): it looks for
-- due deliveries at once instead of at its next start.
CREATE TABLE signals (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    endpoint_id text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
