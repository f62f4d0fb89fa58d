package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotFound is returned for ids that do not exist (or belong to another
// tenant: callers never learn which).
var ErrNotFound = errors.New("not found")

// Endpoint is a subscriber URL with its patterns and signing secrets.
type Endpoint struct {
	ID          string
	TenantID    string // empty: receives only events without a tenant
	URL         string
	Description string
	EventTypes  []string // patterns: "order.created", "order.*", "*"
	Secret      string
	// PreviousSecret keeps signing until PreviousSecretExpiresAt after a
	// rotation, so receivers can switch without dropping requests.
	PreviousSecret          string
	PreviousSecretExpiresAt time.Time
	Headers                 map[string]string
	// Active is false while the endpoint is paused (DisabledReason empty) or
	// disabled (DisabledReason says why); either way it gets no new
	// deliveries and its waiting ones are held.
	Active         bool
	DisabledReason string
	DisabledAt     time.Time
	// Retry policy; zero values mean the configured defaults.
	RetrySchedule []time.Duration
	MaxAttempts   int
	// RetryClientErrors: whether 4xx answers (other than 408, 409, 425 and
	// 429, always retried) are retried like server errors.
	RetryClientErrors bool
	RateLimit         int // requests per second; 0: unlimited
	// FailingSince is when the current run of failed attempts began.
	FailingSince         time.Time
	CreatedAt, UpdatedAt time.Time
}

const endpointColumns = `id, coalesce(tenant_id, ''), url, description, event_types, secret,
	coalesce(previous_secret, ''), coalesce(previous_secret_expires_at, 'epoch'::timestamptz), headers,
	active, coalesce(disabled_reason, ''), coalesce(disabled_at, 'epoch'::timestamptz),
	coalesce(retry_schedule, '{}'), coalesce(max_attempts, 0), retry_client_errors, coalesce(rate_limit, 0),
	coalesce(failing_since, 'epoch'::timestamptz), created_at, updated_at`

func scanEndpoint(row pgx.Row) (*Endpoint, error) {
	var e Endpoint
	var schedule []string
	err := row.Scan(&e.ID, &e.TenantID, &e.URL, &e.Description, &e.EventTypes, &e.Secret,
		&e.PreviousSecret, &e.PreviousSecretExpiresAt, &e.Headers, &e.Active, &e.DisabledReason, &e.DisabledAt,
		&schedule, &e.MaxAttempts, &e.RetryClientErrors, &e.RateLimit, &e.FailingSince, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return nil, err
	}
	for _, d := range schedule {
		v, err := time.ParseDuration(d)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: retry_schedule: %w", e.ID, err)
		}
		e.RetrySchedule = append(e.RetrySchedule, v)
	}
	if e.PreviousSecret == "" {
		e.PreviousSecretExpiresAt = time.Time{}
	}
	for _, t := range []*time.Time{&e.DisabledAt, &e.FailingSince} {
		if t.Unix() == 0 {
			*t = time.Time{}
		}
	}
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	return &e, nil
}

// CreateEndpoint inserts e, filling ID and timestamps.
func (s *Store) CreateEndpoint(ctx context.Context, e *Endpoint) error {
	if e.ID == "" {
		e.ID = NewID("ep_")
	}
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	err := s.outbox.QueryRow(ctx, `INSERT INTO endpoints (id, tenant_id, url, description, event_types, secret, headers, active,
			retry_schedule, max_attempts, retry_client_errors, rate_limit)
		VALUES ($1, nullif($2, ''), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING created_at, updated_at`,
		e.ID, e.TenantID, e.URL, e.Description, e.EventTypes, e.Secret, e.Headers, e.Active,
		durationStrings(e.RetrySchedule), nullInt(e.MaxAttempts), e.RetryClientErrors, nullInt(e.RateLimit)).Scan(&e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert endpoint: %w", err)
	}
	return nil
}

// GetEndpoint returns one endpoint; tenant, when not nil, must match.
func (s *Store) GetEndpoint(ctx context.Context, id string, tenant *string) (*Endpoint, error) {
	e, err := scanEndpoint(s.outbox.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read endpoint %s: %w", id, err)
	}
	if tenant != nil && e.TenantID != *tenant {
		return nil, ErrNotFound
	}
	return e, nil
}

// durationStrings keeps a schedule as Go duration strings ("1m0s"),
// readable in psql; nil stays NULL (the configured default).
func durationStrings(ds []time.Duration) []string {
	if len(ds) == 0 {
		return nil
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// EndpointHealth is a change of an endpoint's health found by delivering.
type EndpointHealth struct {
	EndpointID string
	// FailingSince starts (non-zero) or ends (zero) a run of failures.
	FailingSince time.Time
	// Disable, when not empty, disables the endpoint with this reason.
	Disable string
}

// queueHealth queues health changes. Disabling keeps the earliest reason; a
// change for a deleted endpoint does nothing.
func queueHealth(q *pgx.Batch, hs []EndpointHealth) {
	for _, h := range hs {
		if h.Disable != "" {
			q.Queue(`UPDATE endpoints SET active = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
				WHERE id = $1 AND disabled_reason IS NULL`, h.EndpointID, h.Disable)
			continue
		}
		q.Queue(`UPDATE endpoints SET failing_since = $2 WHERE id = $1 AND failing_since IS DISTINCT FROM $2`,
			h.EndpointID, nullTime(h.FailingSince))
	}
}

// SetEndpointActive pauses (active false) or resumes an endpoint; resuming
// also re-enables a disabled one and clears its failure run. It returns
// ErrNotFound for an unknown id or another tenant's.
func (s *Store) SetEndpointActive(ctx context.Context, id string, tenant *string, active bool) (*Endpoint, error) {
	sql := `UPDATE endpoints SET active = false, updated_at = now() WHERE id = $1 AND ($2::text IS NULL OR coalesce(tenant_id, '') = $2)
		RETURNING ` + endpointColumns
	if active {
		sql = `UPDATE endpoints SET active = true, disabled_reason = NULL, disabled_at = NULL, failing_since = NULL, updated_at = now()
		WHERE id = $1 AND ($2::text IS NULL OR coalesce(tenant_id, '') = $2) RETURNING ` + endpointColumns
	}
	e, err := scanEndpoint(s.outbox.QueryRow(ctx, sql, id, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("set endpoint %s active=%v: %w", id, active, err)
	}
	return e, nil
}
