package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	// batch. It is slower (rows go through temporary tables), so it is only
	// used to write a batch that failed with IsDuplicate: a duplicate must
	// never stall recording.
	Tolerant bool
}

// IsDuplicate reports whether err is a unique violation.
func IsDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// copyRows inserts n rows into table with COPY, or, for a tolerant batch,
// COPYs them into a temporary twin and inserts what does not exist yet.
func copyRows(ctx context.Context, tx pgx.Tx, b *Batch, table string, cols []string, n int, row func(i int) ([]any, error)) error {
	target := table
	if b.Tolerant {
		target = "tolerant_" + table
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+target+" (LIKE "+table+" INCLUDING DEFAULTS) ON COMMIT DROP"); err != nil {
			return err
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{target}, cols, pgx.CopyFromSlice(n, row)); err != nil {
		return err
	}
	if b.Tolerant {
		list := strings.Join(cols, ", ")
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" ("+list+") SELECT "+list+" FROM "+target+" ON CONFLICT DO NOTHING"); err != nil {
			return err
		}
	}
	return nil
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

// WriteBatch records b atomically: rows are inserted with COPY and updates
// applied with one statement, in a single transaction.
func (s *Store) WriteBatch(ctx context.Context, b *Batch) error {
	if b.Empty() {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record batch: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit

	if len(b.Events) > 0 {
		err := copyRows(ctx, tx, b, "events",
			[]string{"id", "event_type", "tenant_id", "payload", "outbox_id", "lsn", "created_at", "received_at"},
			len(b.Events), func(i int) ([]any, error) {
				e := &b.Events[i]
				return []any{e.ID, e.Type, nullString(e.TenantID), e.Payload, nullString(e.OutboxID), int64(e.LSN), e.CreatedAt, e.ReceivedAt}, nil
			})
		if err != nil {
			return fmt.Errorf("record %d events: %w", len(b.Events), err)
		}
	}
	if len(b.Deliveries) > 0 {
		err := copyRows(ctx, tx, b, "deliveries",
			[]string{"id", "endpoint_id", "event_id", "event_type", "tenant_id", "status", "attempts", "max_attempts",
				"next_retry_at", "last_status_code", "last_response", "last_error", "created_at", "updated_at", "delivered_at"},
			len(b.Deliveries), func(i int) ([]any, error) {
				d := &b.Deliveries[i]
				return []any{d.ID, d.EndpointID, d.EventID, d.EventType, nullString(d.TenantID), string(d.Status), int32(d.Attempts), int32(d.MaxAttempts),
					nullTime(d.NextRetryAt), nullInt(d.LastStatusCode), nullString(d.LastResponse), nullString(d.LastError), d.CreatedAt, d.UpdatedAt, nullTime(d.DeliveredAt)}, nil
			})
		if err != nil {
			return fmt.Errorf("record %d deliveries: %w", len(b.Deliveries), err)
		}
	}
	if len(b.Attempts) > 0 {
		err := copyRows(ctx, tx, b, "attempts",
			[]string{"delivery_id", "attempt", "endpoint_id", "started_at", "duration_us", "status_code", "response", "error"},
			len(b.Attempts), func(i int) ([]any, error) {
				a := &b.Attempts[i]
				return []any{a.DeliveryID, int32(a.Attempt), a.EndpointID, a.StartedAt, a.Duration.Microseconds(), nullInt(a.StatusCode), nullString(a.Response), nullString(a.Error)}, nil
			})
		if err != nil {
			return fmt.Errorf("record %d attempts: %w", len(b.Attempts), err)
		}
	}
	if len(b.DeadLetters) > 0 {
		err := copyRows(ctx, tx, b, "dead_letters",
			[]string{"lsn", "outbox_id", "reason", "raw"},
			len(b.DeadLetters), func(i int) ([]any, error) {
				d := &b.DeadLetters[i]
				return []any{int64(d.LSN), nullString(d.OutboxID), d.Reason, d.Raw}, nil
			})
		if err != nil {
			return fmt.Errorf("record %d dead letters: %w", len(b.DeadLetters), err)
		}
	}

	var q pgx.Batch
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
			if !d.NextRetryAt.IsZero() {
				next[i] = &d.NextRetryAt
			}
			if d.LastStatusCode != 0 {
				c := int32(d.LastStatusCode)
				codes[i] = &c
			}
			if d.LastResponse != "" {
				responses[i] = &d.LastResponse
			}
			if d.LastError != "" {
				errs[i] = &d.LastError
			}
			if !d.DeliveredAt.IsZero() {
				delivered[i] = &d.DeliveredAt
			}
		}
		q.Queue(`UPDATE deliveries d SET status = u.status, attempts = u.attempts, next_retry_at = u.next_retry_at,
				last_status_code = u.code, last_response = u.response, last_error = u.error,
				updated_at = u.updated_at, delivered_at = coalesce(u.delivered_at, d.delivered_at)
			FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[])
				AS u(id, status, attempts, next_retry_at, code, response, error, updated_at, delivered_at)
			WHERE d.id = u.id`,
			ids, statuses, attempts, next, codes, responses, errs, updated, delivered)
	}
	queueHealth(&q, b.Health)
	if len(b.EventTypes) > 0 {
		q.Queue(`INSERT INTO event_types (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, b.EventTypes)
	}
	if b.Cursor != 0 {
		q.Queue(`INSERT INTO stream_cursors (slot, lsn, updated_at) VALUES ($1, $2, now())
			ON CONFLICT (slot) DO UPDATE SET lsn = greatest(stream_cursors.lsn, excluded.lsn), updated_at = excluded.updated_at`,
			b.Slot, int64(b.Cursor))
	}
	if q.Len() > 0 {
		if err := tx.SendBatch(ctx, &q).Close(); err != nil {
			return fmt.Errorf("record %d updates: %w", len(b.Updates), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record batch: commit: %w", err)
	}
	return nil
}
