-- Newest-first lists read these indexes backwards just as well. Built
-- ascending, a new row's entry lands on the rightmost leaf, which Postgres
-- inserts into without descending the tree and splits leaving full; built
-- descending, every entry went to the leftmost leaf, with a descent each
-- time and half-empty pages behind it. About 0.9 µs less per entry on a
-- 2-core machine, and smaller indexes. endpoints_created_idx stays as it is:
-- endpoints are few and seldom created. The rebuild locks events and
-- deliveries for its duration (see the README on upgrading).
DROP INDEX events_created_idx;
CREATE INDEX events_created_idx ON events (created_at, id);
DROP INDEX deliveries_created_idx;
CREATE INDEX deliveries_created_idx ON deliveries (created_at, id);
DROP INDEX deliveries_endpoint_created_idx;
CREATE INDEX deliveries_endpoint_created_idx ON deliveries (endpoint_id, created_at, id);
