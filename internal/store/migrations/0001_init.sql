-- walhook's own tables. Unqualified names resolve to walhook's schema: the
-- migrator sets search_path to it.

CREATE TABLE endpoints (
    id                         text PRIMARY KEY,
    tenant_id                  text,
    url                        text NOT NULL,
    description                text NOT NULL DEFAULT '',
    event_types                text[] NOT NULL,
    secret                     text NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    headers                    jsonb NOT NULL DEFAULT '{}',
    active                     boolean NOT NULL DEFAULT true,
    disabled_reason            text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_tenant_created_idx ON endpoints (tenant_id, created_at, id);

-- One row per outbox event, however many endpoints it fans out to. The id is
-- derived from the event's position in the WAL, so it sorts in commit order
-- and is the same when a transaction is streamed again after a crash.
CREATE TABLE events (
    id          text PRIMARY KEY,
    event_type  text NOT NULL,
    tenant_id   text,
    payload     jsonb NOT NULL,
    outbox_id   text,
    lsn         bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    received_at timestamptz NOT NULL
);

-- One row per (event, endpoint). No foreign keys: history outlives deleted
-- endpoints, and a per-row check would cost on the hot write path.
CREATE TABLE deliveries (
    id               text PRIMARY KEY,
    endpoint_id      text NOT NULL,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    tenant_id        text,
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'retrying', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    next_retry_at    timestamptz,
    last_status_code integer,
    last_response    text,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    delivered_at     timestamptz
);
CREATE INDEX deliveries_created_idx ON deliveries (created_at DESC, id DESC);
CREATE INDEX deliveries_endpoint_created_idx ON deliveries (endpoint_id, created_at DESC, id DESC);
-- Only unfinished deliveries: what a restart loads back into the scheduler.
CREATE INDEX deliveries_unfinished_idx ON deliveries (next_retry_at) WHERE status IN ('pending', 'retrying');

CREATE TABLE attempts (
    delivery_id text NOT NULL,
    attempt     integer NOT NULL,
    endpoint_id text NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_us bigint NOT NULL,
    status_code integer,
    response    text,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Outbox rows that could not become events, kept with their reason.
CREATE TABLE dead_letters (
    id         bigserial PRIMARY KEY,
    lsn        bigint NOT NULL,
    outbox_id  text,
    reason     text NOT NULL,
    raw        jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Per slot, the end of the last transaction whose events are recorded here:
-- a transaction streamed again at or below it is skipped.
CREATE TABLE stream_cursors (
    slot       text PRIMARY KEY,
    lsn        bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE event_types (
    name          text PRIMARY KEY,
    first_seen_at timestamptz NOT NULL DEFAULT now()
);
