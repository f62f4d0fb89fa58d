package store

// Queries of the management API: pages of endpoints and events, endpoint
// updates, deletion and secret rotation, and the record of a test send.
// Every look-up by id takes a tenant: when it is not nil, a row of another
// tenant is ErrNotFound, exactly like a row that does not exist.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PageKey is a position in a newest-first list: the created_at and id of
// the last row of the previous page. Lists of deliveries, which are in id
// order, use the id alone.
type PageKey struct {
	CreatedAt time.Time
	ID        string
}

// listing builds a newest-first list query over one table alias: its
// conditions, their parameters, then order and limit.
type listing struct {
	alias string // "d." or "" for an unaliased table
	// idFloor, when set, makes the list one in id order, for tables whose
	// ids begin with their creation time: idFloor(t) is the least id of a
	// row created at t or later.
	idFloor func(time.Time) string
	where   []string
	args    []any
}

// arg adds a parameter and returns its placeholder.
func (l *listing) arg(v any) string {
	l.args = append(l.args, v)
	return fmt.Sprintf("$%d", len(l.args))
}

// eq adds "alias.column = value" unless value is empty.
func (l *listing) eq(column, value string) {
	if value != "" {
		l.where = append(l.where, l.alias+column+" = "+l.arg(value))
	}
}

// tenant scopes the list to a tenant unless it is nil.
func (l *listing) tenant(t *string) {
	if t != nil {
		l.where = append(l.where, "coalesce("+l.alias+"tenant_id, '') = "+l.arg(*t))
	}
}

// page adds the time range and cursor conditions: on created_at and id,
// as a row comparison that keeps the (created_at, id) indexes usable read
// backwards, or on the id alone for a list in id order.
func (l *listing) page(since, until time.Time, before *PageKey) {
	a := l.alias
	if l.idFloor != nil {
		if !since.IsZero() {
			l.where = append(l.where, a+"id >= "+l.arg(l.idFloor(since)))
		}
		if !until.IsZero() {
			l.where = append(l.where, a+"id < "+l.arg(l.idFloor(until)))
		}
		if before != nil {
			l.where = append(l.where, a+"id < "+l.arg(before.ID))
		}
		return
	}
	if !since.IsZero() {
		l.where = append(l.where, a+"created_at >= "+l.arg(since))
	}
	if !until.IsZero() {
		l.where = append(l.where, a+"created_at < "+l.arg(until))
	}
	if before != nil {
		l.where = append(l.where, fmt.Sprintf("(%screated_at, %sid) < (%s, %s)", a, a, l.arg(before.CreatedAt), l.arg(before.ID)))
	}
}

// sql completes selectFrom with the conditions, the order and limit (0: none).
func (l *listing) sql(selectFrom string, limit int) string {
	sql := selectFrom
	if len(l.where) > 0 {
		sql += " WHERE " + strings.Join(l.where, " AND ")
	}
	if l.idFloor != nil {
		sql += " ORDER BY " + l.alias + "id DESC"
	} else {
		sql += " ORDER BY " + l.alias + "created_at DESC, " + l.alias + "id DESC"
	}
	if limit > 0 {
		sql += " LIMIT " + l.arg(limit)
	}
	return sql
}

// tenantScope is the condition "tenant_id matches $n, unless $n is NULL".
func tenantScope(alias, param string) string {
	return "(" + param + "::text IS NULL OR coalesce(" + alias + "tenant_id, '') = " + param + ")"
}

// EndpointPage selects a page of endpoints, newest first.
type EndpointPage struct {
	Tenant *string // nil: all tenants
	Before *PageKey
	Limit  int // 0: no limit
}

// PageEndpoints returns endpoints newest first.
func (s *Store) PageEndpoints(ctx context.Context, p EndpointPage) ([]*Endpoint, error) {
	var l listing
	l.tenant(p.Tenant)
	l.page(time.Time{}, time.Time{}, p.Before)
	return queryAll(ctx, s.outbox, "list endpoints", l.sql(`SELECT `+endpointColumns+` FROM endpoints`, p.Limit), l.args, scanEndpoint)
}

// UpdateEndpoint reads an endpoint under a row lock, lets change modify it
// and writes back its settings and state (url, description, event types,
// headers, retry policy, rate limit, active/disabled, failing_since); the
// id, tenant, secrets and creation time are not changed. An error from
// change is returned as it is and nothing is written. The committed change
// reaches a running walhook through the replication stream.
func (s *Store) UpdateEndpoint(ctx context.Context, id string, tenant *string, change func(*Endpoint) error) (*Endpoint, error) {
	tx, err := s.outbox.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("update endpoint %s: %w", id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	e, err := scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE id = $1 AND `+tenantScope("", "$2")+` FOR UPDATE`, id, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("update endpoint %s: %w", id, err)
	}
	if err := change(e); err != nil {
		return nil, err
	}
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	e, err = scanEndpoint(tx.QueryRow(ctx, `UPDATE endpoints SET url = $2, description = $3, event_types = $4, headers = $5,
			retry_schedule = $6, max_attempts = $7, retry_client_errors = $8, rate_limit = $9,
			active = $10, disabled_reason = $11, disabled_at = $12, failing_since = $13, updated_at = now()
		WHERE id = $1 RETURNING `+endpointColumns,
		id, e.URL, e.Description, e.EventTypes, e.Headers, durationStrings(e.RetrySchedule), nullInt(e.MaxAttempts),
		e.RetryClientErrors, nullInt(e.RateLimit), e.Active, nullString(e.DisabledReason), nullTime(e.DisabledAt), nullTime(e.FailingSince)))
	if err != nil {
		return nil, fmt.Errorf("update endpoint %s: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("update endpoint %s: %w", id, err)
	}
	return e, nil
}

// DeleteEndpoint deletes an endpoint. Its deliveries and attempts stay as
// history; unfinished ones fail when they come due ("endpoint deleted").
func (s *Store) DeleteEndpoint(ctx context.Context, id string, tenant *string) error {
	tag, err := s.outbox.Exec(ctx, `DELETE FROM endpoints WHERE id = $1 AND `+tenantScope("", "$2"), id, tenant)
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// RotateSecret makes secret the endpoint's signing secret. With overlap > 0
// the current secret becomes the previous one, which keeps signing until
// now + overlap (a previous secret still in its overlap is dropped); with
// overlap 0 the current secret stops signing at once.
func (s *Store) RotateSecret(ctx context.Context, id string, tenant *string, secret string, overlap time.Duration) (*Endpoint, error) {
	e, err := scanEndpoint(s.outbox.QueryRow(ctx, `UPDATE endpoints SET
			previous_secret = CASE WHEN $4::bigint > 0 THEN secret END,
			previous_secret_expires_at = CASE WHEN $4::bigint > 0 THEN now() + $4::bigint * interval '1 microsecond' END,
			secret = $3, updated_at = now()
		WHERE id = $1 AND `+tenantScope("", "$2")+` RETURNING `+endpointColumns,
		id, tenant, secret, overlap.Microseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("rotate secret of endpoint %s: %w", id, err)
	}
	return e, nil
}

// ExpirePreviousSecrets clears the previous secrets whose overlap ended by
// now and returns the ids of those endpoints and when the next remaining
// overlap ends (zero: none). Clearing them is what makes a running walhook
// reload those endpoints and sign with the current secret alone.
func (s *Store) ExpirePreviousSecrets(ctx context.Context, now time.Time) (ids []string, next time.Time, err error) {
	rows, err := s.outbox.Query(ctx, `UPDATE endpoints SET previous_secret = NULL, previous_secret_expires_at = NULL
		WHERE previous_secret IS NOT NULL AND coalesce(previous_secret_expires_at, '-infinity') <= $1 RETURNING id`, now)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("expire previous secrets: %w", err)
	}
	ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("expire previous secrets: %w", err)
	}
	var nextAt *time.Time
	if err := s.outbox.QueryRow(ctx, `SELECT min(previous_secret_expires_at) FROM endpoints WHERE previous_secret IS NOT NULL`).Scan(&nextAt); err != nil {
		return ids, time.Time{}, fmt.Errorf("expire previous secrets: next expiry: %w", err)
	}
	if nextAt != nil {
		next = *nextAt
	}
	return ids, next, nil
}

// EventFilter selects events for listing, newest first.
type EventFilter struct {
	Tenant    *string // nil: all tenants
	EventType string
	// Since (inclusive) and Until (exclusive) bound created_at; zero: open.
	Since, Until time.Time
	Before       *PageKey
	Limit        int // 0: no limit
}

const eventColumns = `e.id, e.event_type, coalesce(e.tenant_id, ''), coalesce(e.outbox_id, ''), e.lsn, e.created_at, e.received_at`

func scanEvent(row pgx.Row, extra ...any) (*Event, error) {
	var e Event
	var lsn int64
	if err := row.Scan(append([]any{&e.ID, &e.Type, &e.TenantID, &e.OutboxID, &lsn, &e.CreatedAt, &e.ReceivedAt}, extra...)...); err != nil {
		return nil, err
	}
	e.LSN = uint64(lsn)
	return &e, nil
}

// ListEvents returns events newest first, without their payloads.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]*Event, error) {
	sql, args := eventsQuery(f)
	return queryAll(ctx, s.pool, "list events", sql, args, func(r pgx.Row) (*Event, error) { return scanEvent(r) })
}

func eventsQuery(f EventFilter) (string, []any) {
	l := listing{alias: "e."}
	l.tenant(f.Tenant)
	l.eq("event_type", f.EventType)
	l.page(f.Since, f.Until, f.Before)
	return l.sql(`SELECT `+eventColumns+` FROM events e`, f.Limit), l.args
}

// GetEvent returns one event with its payload; tenant, when not nil, must
// match.
func (s *Store) GetEvent(ctx context.Context, id string, tenant *string) (*Event, error) {
	var payload []byte
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+`, e.payload FROM events e
		WHERE e.id = $1 AND `+tenantScope("e.", "$2"), id, tenant), &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read event %s: %w", id, err)
	}
	e.Payload = payload
	return e, nil
}

// SeenEventType is an event type that came through the outbox.
type SeenEventType struct {
	Name        string
	FirstSeenAt time.Time
}

// maxEventTypes bounds the catalogue read (the stream records at most this
// many distinct types per process).
const maxEventTypes = 10000

// ListEventTypes returns the event types seen on the stream, by name.
func (s *Store) ListEventTypes(ctx context.Context) ([]SeenEventType, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, first_seen_at FROM event_types ORDER BY name LIMIT $1`, maxEventTypes)
	if err != nil {
		return nil, fmt.Errorf("list event types: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SeenEventType, error) {
		var t SeenEventType
		err := r.Scan(&t.Name, &t.FirstSeenAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list event types: %w", err)
	}
	return out, nil
}

// RecordSent records an event that was sent outside the stream (a test
// send): the event, its one finished delivery and that delivery's attempt,
// in one transaction. None of it is scheduled: the delivery is delivered or
// failed, and can be re-sent like any other.
func (s *Store) RecordSent(ctx context.Context, ev *Event, d *Delivery, a *Attempt) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record sent event %s: %w", ev.ID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	var q pgx.Batch
	q.Queue(`INSERT INTO events (id, event_type, tenant_id, payload, outbox_id, lsn, created_at, received_at, committed_at)
		VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8)`,
		ev.ID, ev.Type, nullString(ev.TenantID), ev.Payload, int64(ev.LSN), ev.CreatedAt, ev.ReceivedAt, nullTime(ev.CommittedAt))
	q.Queue(`INSERT INTO deliveries (id, endpoint_id, event_id, event_type, tenant_id, status, attempts, max_attempts,
			next_retry_at, last_status_code, last_response, last_error, created_at, updated_at, delivered_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		d.ID, d.EndpointID, d.EventID, d.EventType, nullString(d.TenantID), string(d.Status), int32(d.Attempts), int32(d.MaxAttempts),
		nullTime(d.NextRetryAt), nullInt(d.LastStatusCode), optText(d.LastResponse), optText(d.LastError), d.CreatedAt, d.UpdatedAt, nullTime(d.DeliveredAt))
	q.Queue(`INSERT INTO attempts (delivery_id, attempt, endpoint_id, started_at, duration_us, status_code, response, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.DeliveryID, int32(a.Attempt), a.EndpointID, a.StartedAt, a.Duration.Microseconds(), nullInt(a.StatusCode), optText(a.Response), optText(a.Error))
	if err := tx.SendBatch(ctx, &q).Close(); err != nil {
		return fmt.Errorf("record sent event %s: %w", ev.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record sent event %s: %w", ev.ID, err)
	}
	return nil
}
