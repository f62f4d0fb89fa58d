package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Status is where a delivery stands.
//
//	pending ──2xx──▶ delivered
//	   │ failure, attempts left
//	   ▼
//	retrying ──due──▶ (attempt) ──2xx──▶ delivered
//	   │ failure, no attempts left
//	   ▼
//	failed
//
// pending means an attempt is under way or queued; after a crash pending
// deliveries are attempted again.
type Status string

// Delivery statuses.
const (
	StatusPending   Status = "pending"
	StatusDelivered Status = "delivered"
	StatusRetrying  Status = "retrying"
	StatusFailed    Status = "failed"
)

// Event is one outbox row turned into an event.
type Event struct {
	ID         string
	Type       string
	TenantID   string
	Payload    []byte // JSON, as the outbox holds it
	OutboxID   string
	LSN        uint64
	CreatedAt  time.Time
	ReceivedAt time.Time
	// CommittedAt is when the event was committed (sent, for a test), which
	// is when its deliveries were created: ListDeliveries finds them by it.
	CommittedAt time.Time
}

// Delivery is one event for one endpoint.
type Delivery struct {
	ID             string
	EndpointID     string
	EventID        string
	EventType      string
	TenantID       string
	Status         Status
	Attempts       int
	MaxAttempts    int
	NextRetryAt    time.Time // zero unless retrying
	LastStatusCode int       // 0: no HTTP response
	LastResponse   string
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	DeliveredAt    time.Time
	// LastAttemptAt and LastDuration are set on a new delivery whose first
	// attempt succeeded before its row was written: that attempt is kept
	// on the row, not in attempts (see ListAttempts).
	LastAttemptAt time.Time
	LastDuration  time.Duration
}

// Attempt is one HTTP request of a delivery.
type Attempt struct {
	DeliveryID string
	Attempt    int
	EndpointID string
	StartedAt  time.Time
	Duration   time.Duration
	StatusCode int // 0: no HTTP response
	Response   string
	Error      string
}

// DeadLetter is an outbox row that could not become an event.
type DeadLetter struct {
	LSN      uint64
	OutboxID string
	Reason   string
	Raw      []byte // JSON object of the row's columns
}

// Batch is everything one group commit records.
type Batch struct {
	Events      []Event
	Deliveries  []Delivery // new rows
	Updates     []Delivery // rows already recorded: status, attempts and last result
	Attempts    []Attempt
	DeadLetters []DeadLetter
	EventTypes  []string // types not seen before
	Health      []EndpointHealth
	// Slot and Cursor, when Cursor is not zero, move the slot's recorded
	// stream position in the same transaction.
	Slot   string
	Cursor uint64
	// Tolerant inserts skip rows whose key exists instead of failing the
	// batch. It is only used to write again a batch that failed with
	// IsDuplicate (a duplicate must never stall recording): a silent skip
	// would hide the bug that made the duplicate.
	Tolerant bool
}

// IsDuplicate reports whether err is a unique violation.
func IsDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Empty reports whether the batch writes nothing.
func (b *Batch) Empty() bool {
	return len(b.Events) == 0 && len(b.Deliveries) == 0 && len(b.Updates) == 0 && len(b.Attempts) == 0 &&
		len(b.DeadLetters) == 0 && len(b.EventTypes) == 0 && len(b.Health) == 0 && b.Cursor == 0
}

// Rows counts the rows the batch inserts or updates.
func (b *Batch) Rows() int {
	return len(b.Events) + len(b.Deliveries) + len(b.Updates) + len(b.Attempts) + len(b.DeadLetters)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nullInt(n int) any {
	if n == 0 {
		return nil
	}
	return int32(n)
}

// column is one column of a batched insert: its name, its SQL type, and a
// slice of its values (one per row).
type column struct {
	name, typ string
	values    any
}

// queueInsert queues INSERT ... SELECT FROM unnest(arrays): any number of
// rows in one statement, pipelined with the rest of the batch.
func queueInsert(q *pgx.Batch, table, onConflict string, cols ...column) {
	names := make([]string, len(cols))
	params := make([]string, len(cols))
	args := make([]any, len(cols))
	for i, c := range cols {
		names[i] = c.name
		params[i] = fmt.Sprintf("$%d::%s[]", i+1, c.typ)
		args[i] = flat(c.values)
	}
	sql := "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ") SELECT * FROM unnest(" + strings.Join(params, ", ") + ")"
	if onConflict != "" {
		sql += " " + onConflict
	}
	q.Queue(sql, args...)
}

// flat hands pgx slices it would otherwise encode through reflection (a
// few µs per row at full speed) as flat arrays it indexes directly.
func flat(values any) any {
	switch v := values.(type) {
	case []*string:
		return pgtype.FlatArray[*string](v)
	case []*int32:
		return pgtype.FlatArray[*int32](v)
	case []*time.Time:
		return pgtype.FlatArray[*time.Time](v)
	case [][]byte:
		return pgtype.FlatArray[[]byte](v)
	case []*int64:
		return pgtype.FlatArray[*int64](v)
	}
	return values
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// optText is optString for free text that comes from outside (response
// bodies, error messages): Postgres text takes neither NUL bytes nor
// invalid UTF-8, and one such value would fail its whole batch, over and
// over.
func optText(s string) *string {
	if s == "" {
		return nil
	}
	s = storable(s)
	return &s
}

// storable replaces NUL bytes and invalid UTF-8 with U+FFFD.
func storable(s string) string {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	return s
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func optInt(n int) *int32 {
	if n == 0 {
		return nil
	}
	v := int32(n)
	return &v
}

// WriteBatch records b atomically: it commits whole or not at all. A small
// batch is one round trip: every insert (as unnest of arrays) and update
// pipelined in a single implicit transaction. A big one writes its events,
// deliveries and attempts with binary COPY in an explicit transaction,
// which takes Postgres' multi-row insert path (about a third cheaper per
// row than unnest) for a few more round trips.
func (s *Store) WriteBatch(ctx context.Context, b *Batch) error {
	if b.Empty() {
		return nil
	}
	// A tolerant batch skips existing events and attempts; an existing
	// delivery takes the batch's state when it is as far along (a result
	// folded into the insert must not be lost with it).
	skip, deliveryConflict := "", ""
	if b.Tolerant {
		skip = "ON CONFLICT DO NOTHING"
		deliveryConflict = `ON CONFLICT (id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
			next_retry_at = excluded.next_retry_at, last_status_code = excluded.last_status_code,
			last_response = excluded.last_response, last_error = excluded.last_error, updated_at = excluded.updated_at,
			delivered_at = coalesce(excluded.delivered_at, deliveries.delivered_at),
			last_attempt_at = excluded.last_attempt_at, last_duration_us = excluded.last_duration_us
			WHERE excluded.attempts >= deliveries.attempts`
	}
	// With two databases, endpoints' health is written first, in the
	// outbox's: the changes are idempotent, so a batch that then fails and
	// is written again does no harm, and none is lost with it.
	if s.split() && len(b.Health) > 0 {
		var hq pgx.Batch
		queueHealth(&hq, b.Health)
		if err := s.outbox.SendBatch(ctx, &hq).Close(); err != nil {
			return fmt.Errorf("record the health of %d endpoints: %w", len(b.Health), err)
		}
	}
	var q pgx.Batch
	useCopy := !b.Tolerant && len(b.Events)+len(b.Deliveries)+len(b.Attempts) >= copyRows
	if !useCopy {
		queueNewRows(&q, b, skip, deliveryConflict)
	}
	queueRest(&q, b, !s.split())
	if !useCopy {
		if q.Len() == 0 {
			return nil // health alone, written above
		}
		if err := s.pool.SendBatch(ctx, &q).Close(); err != nil {
			return fmt.Errorf("record batch of %d rows: %w", b.Rows(), err)
		}
		return nil
	}
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.copyNewRows(ctx, tx, b); err != nil {
			return err
		}
		if q.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, &q).Close()
	}); err != nil {
		return fmt.Errorf("record batch of %d rows: %w", b.Rows(), err)
	}
	return nil
}

// copyRows is the batch size from which new rows are written by COPY.
const copyRows = 64

// queueNewRows queues the inserts of new events, deliveries and attempts.
func queueNewRows(q *pgx.Batch, b *Batch, skip, deliveryConflict string) {
	if n := len(b.Events); n > 0 {
		ids, types, tenants, payloads := make([]string, n), make([]string, n), make([]*string, n), make([][]byte, n)
		outbox, lsns, created, received := make([]*string, n), make([]int64, n), make([]time.Time, n), make([]time.Time, n)
		committed := make([]*time.Time, n)
		for i := range b.Events {
			e := &b.Events[i]
			ids[i], types[i], tenants[i], payloads[i] = e.ID, e.Type, optString(e.TenantID), e.Payload
			outbox[i], lsns[i], created[i], received[i] = optString(e.OutboxID), int64(e.LSN), e.CreatedAt, e.ReceivedAt
			committed[i] = optTime(e.CommittedAt)
		}
		queueInsert(q, "events", skip, column{"id", "text", ids}, column{"event_type", "text", types},
			column{"tenant_id", "text", tenants}, column{"payload", "json", payloads}, column{"outbox_id", "text", outbox},
			column{"lsn", "int8", lsns}, column{"created_at", "timestamptz", created}, column{"received_at", "timestamptz", received},
			column{"committed_at", "timestamptz", committed})
	}
	if n := len(b.Deliveries); n > 0 {
		ids, eps, events, types, tenants := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
		statuses, attempts, maxAttempts, next := make([]string, n), make([]int32, n), make([]int32, n), make([]*time.Time, n)
		codes, responses, errs := make([]*int32, n), make([]*string, n), make([]*string, n)
		created, updated, delivered := make([]time.Time, n), make([]time.Time, n), make([]*time.Time, n)
		attemptAt, durations := make([]*time.Time, n), make([]*int64, n)
		for i := range b.Deliveries {
			d := &b.Deliveries[i]
			if !d.LastAttemptAt.IsZero() {
				us := d.LastDuration.Microseconds()
				attemptAt[i], durations[i] = optTime(d.LastAttemptAt), &us
			}
			ids[i], eps[i], events[i], types[i], tenants[i] = d.ID, d.EndpointID, d.EventID, d.EventType, optString(d.TenantID)
			statuses[i], attempts[i], maxAttempts[i], next[i] = string(d.Status), int32(d.Attempts), int32(d.MaxAttempts), optTime(d.NextRetryAt)
			codes[i], responses[i], errs[i] = optInt(d.LastStatusCode), optText(d.LastResponse), optText(d.LastError)
			created[i], updated[i], delivered[i] = d.CreatedAt, d.UpdatedAt, optTime(d.DeliveredAt)
		}
		queueInsert(q, "deliveries", deliveryConflict, column{"id", "text", ids}, column{"endpoint_id", "text", eps},
			column{"event_id", "text", events}, column{"event_type", "text", types}, column{"tenant_id", "text", tenants},
			column{"status", "text", statuses}, column{"attempts", "int4", attempts}, column{"max_attempts", "int4", maxAttempts},
			column{"next_retry_at", "timestamptz", next}, column{"last_status_code", "int4", codes},
			column{"last_response", "text", responses}, column{"last_error", "text", errs},
			column{"created_at", "timestamptz", created}, column{"updated_at", "timestamptz", updated},
			column{"delivered_at", "timestamptz", delivered}, column{"last_attempt_at", "timestamptz", attemptAt},
			column{"last_duration_us", "int8", durations})
	}
	if n := len(b.Attempts); n > 0 {
		ids, nums, eps, started, durations := make([]string, n), make([]int32, n), make([]string, n), make([]time.Time, n), make([]int64, n)
		codes, responses, errs := make([]*int32, n), make([]*string, n), make([]*string, n)
		for i := range b.Attempts {
			a := &b.Attempts[i]
			ids[i], nums[i], eps[i], started[i], durations[i] = a.DeliveryID, int32(a.Attempt), a.EndpointID, a.StartedAt, a.Duration.Microseconds()
			codes[i], responses[i], errs[i] = optInt(a.StatusCode), optText(a.Response), optText(a.Error)
		}
		queueInsert(q, "attempts", skip, column{"delivery_id", "text", ids}, column{"attempt", "int4", nums},
			column{"endpoint_id", "text", eps}, column{"started_at", "timestamptz", started}, column{"duration_us", "int8", durations},
			column{"status_code", "int4", codes}, column{"response", "text", responses}, column{"error", "text", errs})
	}
}

// queueRest queues what follows the new rows: dead letters, updates,
// health changes (withHealth: the endpoints are in the same database),
// event types and the stream cursor.
func queueRest(q *pgx.Batch, b *Batch, withHealth bool) {
	if n := len(b.DeadLetters); n > 0 {
		lsns, outbox, reasons, raws := make([]int64, n), make([]*string, n), make([]string, n), make([][]byte, n)
		for i := range b.DeadLetters {
			d := &b.DeadLetters[i]
			lsns[i], outbox[i], reasons[i], raws[i] = int64(d.LSN), optString(d.OutboxID), d.Reason, d.Raw
		}
		queueInsert(q, "dead_letters", "", column{"lsn", "int8", lsns}, column{"outbox_id", "text", outbox},
			column{"reason", "text", reasons}, column{"raw", "jsonb", raws})
	}

	if n := len(b.Updates); n > 0 {
		ids := make([]string, n)
		statuses := make([]string, n)
		attempts := make([]int32, n)
		next := make([]*time.Time, n)
		codes := make([]*int32, n)
		responses := make([]*string, n)
		errs := make([]*string, n)
		updated := make([]time.Time, n)
		delivered := make([]*time.Time, n)
		for i := range b.Updates {
			d := &b.Updates[i]
			ids[i], statuses[i], attempts[i], updated[i] = d.ID, string(d.Status), int32(d.Attempts), d.UpdatedAt
			next[i], codes[i], delivered[i] = optTime(d.NextRetryAt), optInt(d.LastStatusCode), optTime(d.DeliveredAt)
			responses[i], errs[i] = optText(d.LastResponse), optText(d.LastError)
		}
		q.Queue(`UPDATE deliveries d SET status = u.status, attempts = u.attempts, next_retry_at = u.next_retry_at,
				last_status_code = u.code, last_response = u.response, last_error = u.error,
				updated_at = u.updated_at, delivered_at = coalesce(u.delivered_at, d.delivered_at)
			FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[])
				AS u(id, status, attempts, next_retry_at, code, response, error, updated_at, delivered_at)
			WHERE d.id = u.id`,
			ids, statuses, attempts, flat(next), flat(codes), flat(responses), flat(errs), updated, flat(delivered))
	}
	if withHealth {
		queueHealth(q, b.Health)
	}
	if len(b.EventTypes) > 0 {
		q.Queue(`INSERT INTO event_types (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, b.EventTypes)
	}
	if b.Cursor != 0 {
		q.Queue(`INSERT INTO stream_cursors (slot, lsn, updated_at) VALUES ($1, $2, now())
			ON CONFLICT (slot) DO UPDATE SET lsn = greatest(stream_cursors.lsn, excluded.lsn), updated_at = excluded.updated_at`,
			b.Slot, int64(b.Cursor))
	}
}
