package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

const deliveryColumns = `d.id, d.endpoint_id, d.event_id, d.event_type, coalesce(d.tenant_id, ''), d.status, d.attempts, d.max_attempts,
	coalesce(d.next_retry_at, 'epoch'::timestamptz), coalesce(d.last_status_code, 0), coalesce(d.last_response, ''), coalesce(d.last_error, ''),
	d.created_at, d.updated_at, coalesce(d.delivered_at, 'epoch'::timestamptz)`

func scanDelivery(row pgx.Row, extra ...any) (*Delivery, error) {
	var d Delivery
	var status string
	dest := append([]any{&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.TenantID, &status, &d.Attempts, &d.MaxAttempts,
		&d.NextRetryAt, &d.LastStatusCode, &d.LastResponse, &d.LastError, &d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	d.Status = Status(status)
	for _, t := range []*time.Time{&d.NextRetryAt, &d.DeliveredAt} {
		if t.Unix() == 0 {
			*t = time.Time{}
		}
	}
	return &d, nil
}

// DeliveryFilter selects deliveries for listing, newest first.
type DeliveryFilter struct {
	Tenant     *string // nil: all tenants
	EndpointID string
	EventID    string
	EventType  string
	Status     Status
	// Since (inclusive) and Until (exclusive) bound the creation time the
	// ids begin with (created_at, for rows recorded since migration 0009);
	// zero: open.
	Since, Until time.Time
	// Before, when not nil, is the cursor: only rows after it in the
	// newest-first order.
	Before *PageKey
	Limit  int // 0: no limit
}

// ListDeliveries returns deliveries newest first: in id order, which is the
// order of their creation times (see DeliveryID).
func (s *Store) ListDeliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, error) {
	var committed time.Time
	if f.EventID != "" {
		err := s.pool.QueryRow(ctx, `SELECT committed_at FROM events WHERE id = $1 AND committed_at IS NOT NULL`, f.EventID).Scan(&committed)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil // no such event, or one recorded without deliveries before migration 0009
		}
		if err != nil {
			return nil, fmt.Errorf("list deliveries of event %s: %w", f.EventID, err)
		}
	}
	sql, args := deliveriesQuery(f, committed)
	return queryAll(ctx, s.pool, "list deliveries", sql, args, func(r pgx.Row) (*Delivery, error) { return scanDelivery(r) })
}

// deliveriesQuery is f's list; committed is the commit time of the event
// f.EventID. An event's deliveries were all created at that time, so they
// are the range of ids that begin with it, which the primary key finds.
func deliveriesQuery(f DeliveryFilter, committed time.Time) (string, []any) {
	l := listing{alias: "d.", idFloor: DeliveryIDFloor}
	l.tenant(f.Tenant)
	l.eq("endpoint_id", f.EndpointID)
	l.eq("status", string(f.Status))
	if f.EventID != "" {
		l.eq("event_id", f.EventID)
		l.page(committed, committed.Add(time.Microsecond), nil)
	}
	l.eq("event_type", f.EventType)
	l.page(f.Since, f.Until, f.Before)
	return l.sql(`SELECT `+deliveryColumns+` FROM deliveries d`, f.Limit), l.args
}

// GetDelivery returns one delivery.
func (s *Store) GetDelivery(ctx context.Context, id string) (*Delivery, error) {
	return s.GetDeliveryOf(ctx, id, nil)
}

// GetDeliveryOf returns one delivery; tenant, when not nil, must match
// (another tenant's delivery is ErrNotFound).
func (s *Store) GetDeliveryOf(ctx context.Context, id string, tenant *string) (*Delivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d WHERE d.id = $1
		AND ($2::text IS NULL OR coalesce(d.tenant_id, '') = $2)`, id, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery %s: %w", id, err)
	}
	return d, nil
}

// ListAttempts returns the attempts of a delivery in order.
func (s *Store) ListAttempts(ctx context.Context, deliveryID string) ([]Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT delivery_id, attempt, endpoint_id, started_at, duration_us, coalesce(status_code, 0),
		coalesce(response, ''), coalesce(error, '') FROM attempt_log WHERE delivery_id = $1 ORDER BY attempt`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", deliveryID, err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		var a Attempt
		var us int64
		if err := rows.Scan(&a.DeliveryID, &a.Attempt, &a.EndpointID, &a.StartedAt, &us, &a.StatusCode, &a.Response, &a.Error); err != nil {
			return nil, fmt.Errorf("list attempts of %s: %w", deliveryID, err)
		}
		a.Duration = time.Duration(us) * time.Microsecond
		out = append(out, a)
	}
	return out, rows.Err()
}

// ScheduledDelivery is an unfinished delivery's id and due time.
type ScheduledDelivery struct {
	ID  string
	Due time.Time
}

// ScanUnfinished calls fn for every pending or retrying delivery, in due
// order; pending ones (interrupted attempts) are due at once.
func (s *Store) ScanUnfinished(ctx context.Context, fn func(ScheduledDelivery) error) error {
	rows, err := s.pool.Query(ctx, `SELECT id, coalesce(next_retry_at, created_at) FROM deliveries
		WHERE status IN ('pending', 'retrying') ORDER BY next_retry_at NULLS FIRST`)
	if err != nil {
		return fmt.Errorf("load unfinished deliveries: %w", err)
	}
	defer rows.Close()
	var sd ScheduledDelivery
	for rows.Next() {
		if err := rows.Scan(&sd.ID, &sd.Due); err != nil {
			return fmt.Errorf("load unfinished deliveries: %w", err)
		}
		if err := fn(sd); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DueDelivery is a delivery loaded for its next attempt, with its event.
type DueDelivery struct {
	Delivery
	Payload        []byte
	EventCreatedAt time.Time
}

// LoadDue reads the deliveries among ids that are still unfinished and due by
// now, with their payloads. Ids that were finished or rescheduled meanwhile
// are left out: the scheduler's index may be stale, the table is not. A
// pending one is due at once (its created_at is the commit time, on the
// database's clock, which may run ahead of walhook's).
func (s *Store) LoadDue(ctx context.Context, ids []string, now time.Time) ([]DueDelivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+`, e.payload, e.created_at
		FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE d.id = ANY($1) AND d.status IN ('pending', 'retrying') AND coalesce(d.next_retry_at, '-infinity') <= $2`, ids, now)
	if err != nil {
		return nil, fmt.Errorf("load due deliveries: %w", err)
	}
	defer rows.Close()
	out := make([]DueDelivery, 0, len(ids))
	for rows.Next() {
		var dd DueDelivery
		d, err := scanDelivery(rows, &dd.Payload, &dd.EventCreatedAt)
		if err != nil {
			return nil, fmt.Errorf("load due deliveries: %w", err)
		}
		dd.Delivery = *d
		out = append(out, dd)
	}
	return out, rows.Err()
}

// keepFoldedAttempt copies into attempts the attempt kept only on the
// delivery rows (see migration 0005) that match where, a condition on d
// written in code.
func keepFoldedAttempt(where string) string {
	return `INSERT INTO attempts (delivery_id, attempt, endpoint_id, started_at, duration_us, status_code, response, error)
		SELECT d.id, d.attempts, d.endpoint_id, d.last_attempt_at, coalesce(d.last_duration_us, 0), d.last_status_code, d.last_response, d.last_error
		FROM deliveries d WHERE d.last_attempt_at IS NOT NULL AND ` + where + `
		ON CONFLICT DO NOTHING`
}

// ErrPending is returned when re-queueing a delivery that is still pending:
// an attempt of it is queued or under way.
var ErrPending = errors.New("delivery is pending: an attempt is queued or under way")

// RetryDelivery re-queues one delivery for an attempt now, whatever its
// status (a delivered one is sent again, with the same webhook-id). A
// finished delivery gets one more attempt. A signal row tells a running
// walhook (commitRequeue).
func (s *Store) RetryDelivery(ctx context.Context, id string, tenant *string) (*Delivery, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	d, err := scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d WHERE d.id = $1
		AND ($2::text IS NULL OR coalesce(d.tenant_id, '') = $2) FOR UPDATE`, id, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	if d.Status == StatusPending {
		return nil, ErrPending
	}
	// The next attempt overwrites the delivery's last result: an attempt
	// kept only there moves to the log first.
	if _, err := tx.Exec(ctx, keepFoldedAttempt(`d.id = $1`), id); err != nil {
		return nil, fmt.Errorf("retry delivery %s: keep its last attempt: %w", id, err)
	}
	d, err = scanDelivery(tx.QueryRow(ctx, `UPDATE deliveries d SET status = 'retrying', next_retry_at = now(),
			max_attempts = greatest(max_attempts, attempts + 1), updated_at = now(),
			last_attempt_at = NULL, last_duration_us = NULL
		WHERE d.id = $1 RETURNING `+deliveryColumns, id))
	if err != nil {
		return nil, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	if err := s.commitRequeue(ctx, tx, d.EndpointID); err != nil {
		return nil, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	return d, nil
}

// commitRequeue commits tx, which made deliveries of endpointID due now, and
// tells a running walhook through a signal row, which it streams. With one
// database the row is part of tx. With two it is written once tx has
// committed, in the outbox's database: the stream then reads the deliveries
// as tx left them. A crash in between leaves them to the scan of unfinished
// deliveries at the next start.
func (s *Store) commitRequeue(ctx context.Context, tx pgx.Tx, endpointID string) error {
	const signal = `INSERT INTO signals (kind, endpoint_id) VALUES ('requeue', $1)`
	if !s.split() {
		if _, err := tx.Exec(ctx, signal, endpointID); err != nil {
			return fmt.Errorf("signal: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	if s.split() {
		// The change is committed: a caller going away must not cancel
		// the signal that makes it happen.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := s.outbox.Exec(ctx, signal, endpointID); err != nil {
			return fmt.Errorf("signal (the change is committed; walhook finds it at its next start): %w", err)
		}
	}
	return nil
}

// RecoverEndpoint re-queues, for one more attempt each, the failed
// deliveries of an endpoint created at or after since, and returns how many.
// Creation times are read from the ids, on the (endpoint_id, id) index.
func (s *Store) RecoverEndpoint(ctx context.Context, endpointID string, tenant *string, since time.Time) (int, error) {
	var exists bool
	if err := s.outbox.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM endpoints WHERE id = $1 AND ($2::text IS NULL OR coalesce(tenant_id, '') = $2))`,
		endpointID, tenant).Scan(&exists); err != nil {
		return 0, fmt.Errorf("recover endpoint %s: %w", endpointID, err)
	}
	if !exists {
		return 0, ErrNotFound
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("recover endpoint %s: %w", endpointID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	// Failed deliveries keep every attempt in attempts; this is for safety.
	if _, err := tx.Exec(ctx, keepFoldedAttempt(`d.endpoint_id = $1 AND d.status = 'failed' AND d.id >= $2`), endpointID, DeliveryIDFloor(since)); err != nil {
		return 0, fmt.Errorf("recover endpoint %s: keep last attempts: %w", endpointID, err)
	}
	tag, err := tx.Exec(ctx, `UPDATE deliveries SET status = 'retrying', next_retry_at = now(),
			max_attempts = greatest(max_attempts, attempts + 1), updated_at = now(),
			last_attempt_at = NULL, last_duration_us = NULL
		WHERE endpoint_id = $1 AND status = 'failed' AND id >= $2`, endpointID, DeliveryIDFloor(since))
	if err != nil {
		return 0, fmt.Errorf("recover endpoint %s: %w", endpointID, err)
	}
	commit := tx.Commit
	if tag.RowsAffected() > 0 {
		commit = func(ctx context.Context) error { return s.commitRequeue(ctx, tx, endpointID) }
	}
	if err := commit(ctx); err != nil {
		return 0, fmt.Errorf("recover endpoint %s: %w", endpointID, err)
	}
	return int(tag.RowsAffected()), nil
}

// ScanDue calls fn for every unfinished delivery due by now (of one endpoint
// when endpointID is not empty).
func (s *Store) ScanDue(ctx context.Context, endpointID string, now time.Time, fn func(ScheduledDelivery) error) error {
	rows, err := s.pool.Query(ctx, `SELECT id, coalesce(next_retry_at, created_at) FROM deliveries
		WHERE status IN ('pending', 'retrying') AND next_retry_at <= greatest($1, now()) AND ($2 = '' OR endpoint_id = $2)`, now, endpointID)
	if err != nil {
		return fmt.Errorf("scan due deliveries: %w", err)
	}
	defer rows.Close()
	var sd ScheduledDelivery
	for rows.Next() {
		if err := rows.Scan(&sd.ID, &sd.Due); err != nil {
			return fmt.Errorf("scan due deliveries: %w", err)
		}
		if err := fn(sd); err != nil {
			return err
		}
	}
	return rows.Err()
}
