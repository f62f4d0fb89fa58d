-- A delivery whose first attempt succeeded keeps that attempt on its own
-- row instead of a row in attempts: one insert (and its index entry, WAL
-- and decoding) less per delivery at speed. attempt_log is the whole log:
-- the attempts rows plus, when there is none for it, the delivery's last
-- attempt as kept on the delivery. Re-sending a delivery by hand first
-- copies that attempt into attempts (RetryDelivery), so it is never lost.
ALTER TABLE deliveries ADD COLUMN last_attempt_at timestamptz, ADD COLUMN last_duration_us bigint;

CREATE VIEW attempt_log AS
    SELECT delivery_id, attempt, endpoint_id, started_at, duration_us, status_code, response, error
    FROM attempts
    UNION ALL
    SELECT d.id, d.attempts, d.endpoint_id, d.last_attempt_at, d.last_duration_us, d.last_status_code, d.last_response, d.last_error
    FROM deliveries d
    WHERE d.last_attempt_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = d.id AND a.attempt = d.attempts);
