package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
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
	Active                  bool
	DisabledReason          string
	CreatedAt, UpdatedAt    time.Time
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// DerivedID returns prefix + 26 base32 characters of a SHA-256 of parts:
// the same parts always give the same id.
func DerivedID(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return prefix + idEncoding.EncodeToString(sum[:16])
}

// NewID returns prefix + 26 random base32 characters (128 bits).
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + idEncoding.EncodeToString(b[:])
}

const endpointColumns = `id, coalesce(tenant_id, ''), url, description, event_types, secret,
	coalesce(previous_secret, ''), coalesce(previous_secret_expires_at, 'epoch'::timestamptz), headers,
	active, coalesce(disabled_reason, ''), created_at, updated_at`

func scanEndpoint(row pgx.Row) (*Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.TenantID, &e.URL, &e.Description, &e.EventTypes, &e.Secret,
		&e.PreviousSecret, &e.PreviousSecretExpiresAt, &e.Headers, &e.Active, &e.DisabledReason, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if e.PreviousSecret == "" {
		e.PreviousSecretExpiresAt = time.Time{}
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
	err := s.pool.QueryRow(ctx, `INSERT INTO endpoints (id, tenant_id, url, description, event_types, secret, headers, active)
		VALUES ($1, nullif($2, ''), $3, $4, $5, $6, $7, $8) RETURNING created_at, updated_at`,
		e.ID, e.TenantID, e.URL, e.Description, e.EventTypes, e.Secret, e.Headers, e.Active).Scan(&e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert endpoint: %w", err)
	}
	return nil
}

// GetEndpoint returns one endpoint; tenant, when not nil, must match.
func (s *Store) GetEndpoint(ctx context.Context, id string, tenant *string) (*Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE id = $1`, id))
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

// EndpointFilter selects endpoints for listing.
type EndpointFilter struct {
	Tenant *string // nil: all tenants
	After  string  // cursor: the last id of the previous page
	Limit  int     // 0: no limit
}

// ListEndpoints returns endpoints ordered by id.
func (s *Store) ListEndpoints(ctx context.Context, f EndpointFilter) ([]*Endpoint, error) {
	var where []string
	var args []any
	if f.Tenant != nil {
		args = append(args, *f.Tenant)
		where = append(where, fmt.Sprintf("coalesce(tenant_id, '') = $%d", len(args)))
	}
	if f.After != "" {
		args = append(args, f.After)
		where = append(where, fmt.Sprintf("id > $%d", len(args)))
	}
	sql := `SELECT ` + endpointColumns + ` FROM endpoints`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY id"
	if f.Limit > 0 {
		args = append(args, f.Limit)
		sql += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	defer rows.Close()
	var out []*Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}
