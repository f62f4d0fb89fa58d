-- Deliveries are listed by id. A delivery's id begins with its creation
-- time, which is now its event's commit time (it was the moment walhook
-- recorded it), so the primary key orders them newest first as the
-- (created_at, id) index did, and that index goes. So does the index on
-- event_id: an event's deliveries share its commit time, now kept on the
-- event, which bounds them to a range of the primary key. Two index entries
-- fewer per delivery: at full speed about a fifth of the Postgres CPU walhook
-- costs, and of the WAL its records add.
--
-- Rows recorded before this keep their created_at; lists order them by
-- their ids' commit times, which they precede by the time walhook took to
-- record them. The rebuild locks deliveries and the backfill rewrites the
-- events that have deliveries (see the README on upgrading).
ALTER TABLE events ADD COLUMN committed_at timestamptz;

-- Ids of the form msg_<13 hex digits of microseconds><hash>, as DeliveryID
-- makes them, give their event's commit time; all of an event's share it.
-- (Ids of an earlier form, msg_<LSN in hex>..., read as a time of 1970: the
-- range of ids it gives still holds them, so they are found by event.)
UPDATE events e SET committed_at = 'epoch'::timestamptz
        + ('x' || lpad(substr(d.id, 5, 13), 16, '0'))::bit(64)::bigint * interval '1 microsecond'
    FROM (SELECT event_id, min(id) AS id FROM deliveries WHERE id ~ '^msg_[0-9a-f]{13}' GROUP BY event_id) d
    WHERE d.event_id = e.id;

CREATE INDEX deliveries_endpoint_id_idx ON deliveries (endpoint_id, id);
DROP INDEX deliveries_endpoint_created_idx;
DROP INDEX deliveries_created_idx;
DROP INDEX deliveries_event_idx;
