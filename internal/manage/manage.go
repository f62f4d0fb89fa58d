// Package manage holds the management operations shared by the HTTP API and
// the command line: validating endpoint input, creating, updating and
// deleting endpoints, rotating their secrets (and ending the overlap of a
// rotation on time), sending test events, re-queueing deliveries, and the
// JSON views of endpoints, deliveries, attempts, events and event types.
//
// Views never carry a secret, except the one returned by CreateEndpoint and
// RotateSecret, once. Every operation on an existing object takes a tenant:
// nil for admins, otherwise the caller's tenant, and another tenant's object
// is store.ErrNotFound, exactly like one that does not exist.
package manage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/walhook/walhook/internal/netguard"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/store"
)

// FieldError is invalid input, naming the field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Service performs management operations.
type Service struct {
	Store        *store.Store
	Network      netguard.Policy
	RequireHTTPS bool
	// SecretOverlap is how long the previous secret keeps signing after a
	// rotation that does not say otherwise.
	SecretOverlap time.Duration
	// Catalogue is the configured event types (config event_types).
	Catalogue []string
	// Sender sends test events; nil (no running walhook) refuses them.
	Sender Sender

	wakeOnce sync.Once
	wake     chan struct{} // a rotation happened: recompute the next expiry
}

// EndpointInput is what a caller may set on an endpoint.
type EndpointInput struct {
	URL         string            `json:"url"`
	Description string            `json:"description"`
	Events      []string          `json:"events"`
	TenantID    string            `json:"tenant_id"`
	Headers     map[string]string `json:"headers"`
	// Retry policy overrides; empty/zero/nil keep the configured defaults.
	RetrySchedule     []string `json:"retry_schedule"` // Go durations: "30s", "5m", "2h"
	MaxAttempts       int      `json:"max_attempts"`
	RetryClientErrors *bool    `json:"retry_client_errors"`
	RateLimit         int      `json:"rate_limit"`

	schedule []time.Duration // parsed RetrySchedule
}

// reservedHeaders are set by walhook on every request and cannot be overridden.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "user-agent": true,
	"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
	"x-webhook-event": true, "x-webhook-delivery": true, "x-webhook-timestamp": true, "x-webhook-signature": true,
}

// Validate checks input and normalises it.
func (s *Service) Validate(in *EndpointInput) error { return s.validate(in, true) }

// validate checks input; the URL's scheme and destination only when
// checkURL (an update that keeps the URL keeps it valid, even if the policy
// has become stricter since).
func (s *Service) validate(in *EndpointInput, checkURL bool) error {
	in.URL = strings.TrimSpace(in.URL)
	if in.URL == "" {
		return &FieldError{"url", "is required"}
	}
	if len(in.URL) > 2000 {
		return &FieldError{"url", "must be at most 2000 characters"}
	}
	if checkURL {
		if _, err := s.Network.CheckURL(in.URL, s.RequireHTTPS); err != nil {
			return &FieldError{"url", err.Error()}
		}
	}
	if len(in.Description) > 1000 {
		return &FieldError{"description", "must be at most 1000 characters"}
	}
	if len(in.Events) == 0 {
		return &FieldError{"events", "must list at least one event type or pattern"}
	}
	if len(in.Events) > 100 {
		return &FieldError{"events", "must list at most 100 patterns"}
	}
	seen := map[string]bool{}
	var events []string
	for i, p := range in.Events {
		p = strings.TrimSpace(p)
		if err := route.ValidatePattern(p); err != nil {
			return &FieldError{fmt.Sprintf("events[%d]", i), err.Error()}
		}
		if !seen[p] {
			seen[p] = true
			events = append(events, p)
		}
	}
	in.Events = events
	if len(in.TenantID) > 200 {
		return &FieldError{"tenant_id", "must be at most 200 characters"}
	}
	if len(in.Headers) > 20 {
		return &FieldError{"headers", "must have at most 20 entries"}
	}
	for k, v := range in.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n\t") || http.CanonicalHeaderKey(k) == "" {
			return &FieldError{"headers", fmt.Sprintf("%q is not a valid header name", k)}
		}
		if reservedHeaders[strings.ToLower(k)] {
			return &FieldError{"headers", fmt.Sprintf("%q is set by walhook and cannot be overridden", k)}
		}
		if strings.ContainsAny(v, "\r\n") || len(v) > 1000 {
			return &FieldError{"headers", fmt.Sprintf("value of %q must be one line of at most 1000 characters", k)}
		}
	}
	if len(in.RetrySchedule) > 50 {
		return &FieldError{"retry_schedule", "must list at most 50 delays"}
	}
	in.schedule = nil
	for i, v := range in.RetrySchedule {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < time.Second || d > 7*24*time.Hour {
			return &FieldError{fmt.Sprintf("retry_schedule[%d]", i), fmt.Sprintf("%q must be a duration between 1s and 168h, like 30s, 5m or 2h", v)}
		}
		in.schedule = append(in.schedule, d)
	}
	if in.MaxAttempts < 0 || in.MaxAttempts > 100 {
		return &FieldError{"max_attempts", "must be between 1 and 100 (0: the default)"}
	}
	if in.RateLimit < 0 || in.RateLimit > 100000 {
		return &FieldError{"rate_limit", "must be between 1 and 100000 requests per second (0: unlimited)"}
	}
	return nil
}

// Endpoint is the JSON view of an endpoint; Secret is set only on creation.
type Endpoint struct {
	ID          string            `json:"id"`
	TenantID    string            `json:"tenant_id,omitempty"`
	URL         string            `json:"url"`
	Description string            `json:"description"`
	Events      []string          `json:"events"`
	Headers     map[string]string `json:"headers"`
	Active      bool              `json:"active"`
	// State is active, paused or disabled.
	State             string     `json:"state"`
	DisabledReason    string     `json:"disabled_reason,omitempty"`
	DisabledAt        *time.Time `json:"disabled_at,omitempty"`
	FailingSince      *time.Time `json:"failing_since,omitempty"`
	RetrySchedule     []string   `json:"retry_schedule,omitempty"`
	MaxAttempts       int        `json:"max_attempts,omitempty"`
	RetryClientErrors bool       `json:"retry_client_errors"`
	RateLimit         int        `json:"rate_limit,omitempty"`
	// PreviousSecretExpiresAt is set while a rotated-out secret still signs.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
	Secret                  string     `json:"secret,omitempty"`
}

// EndpointView renders an endpoint without its secret.
func EndpointView(e *store.Endpoint) Endpoint {
	v := Endpoint{
		ID: e.ID, TenantID: e.TenantID, URL: e.URL, Description: e.Description, Events: e.EventTypes,
		Headers: e.Headers, Active: e.Active, DisabledReason: e.DisabledReason,
		DisabledAt: optTime(e.DisabledAt), FailingSince: optTime(e.FailingSince),
		MaxAttempts: e.MaxAttempts, RetryClientErrors: e.RetryClientErrors, RateLimit: e.RateLimit,
		CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC(),
	}
	for _, d := range e.RetrySchedule {
		v.RetrySchedule = append(v.RetrySchedule, d.String())
	}
	if e.PreviousSecret != "" && e.PreviousSecretExpiresAt.After(time.Now()) {
		v.PreviousSecretExpiresAt = optTime(e.PreviousSecretExpiresAt)
	}
	switch {
	case e.Active:
		v.State = "active"
	case e.DisabledReason != "":
		v.State = "disabled"
	default:
		v.State = "paused"
	}
	return v
}

// CreateEndpoint validates input and stores a new active endpoint with a
// fresh secret, returned in the view this once.
func (s *Service) CreateEndpoint(ctx context.Context, in EndpointInput) (Endpoint, error) {
	if err := s.Validate(&in); err != nil {
		return Endpoint{}, err
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return Endpoint{}, fmt.Errorf("generate secret: %w", err)
	}
	e := &store.Endpoint{URL: in.URL, Description: in.Description, EventTypes: in.Events, TenantID: in.TenantID,
		Headers: in.Headers, Secret: secret, Active: true,
		RetrySchedule: in.schedule, MaxAttempts: in.MaxAttempts, RetryClientErrors: in.RetryClientErrors == nil || *in.RetryClientErrors,
		RateLimit: in.RateLimit}
	if err := s.Store.CreateEndpoint(ctx, e); err != nil {
		return Endpoint{}, err
	}
	v := EndpointView(e)
	v.Secret = secret
	return v, nil
}

// Delivery is the JSON view of a delivery.
type Delivery struct {
	ID             string     `json:"id"`
	EndpointID     string     `json:"endpoint_id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	TenantID       string     `json:"tenant_id,omitempty"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	MaxAttempts    int        `json:"max_attempts"`
	NextRetryAt    *time.Time `json:"next_retry_at"`
	LastStatusCode *int       `json:"last_status_code"`
	LastResponse   string     `json:"last_response,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// DeliveryView renders a delivery.
func DeliveryView(d *store.Delivery) Delivery {
	v := Delivery{
		ID: d.ID, EndpointID: d.EndpointID, EventID: d.EventID, EventType: d.EventType, TenantID: d.TenantID,
		Status: string(d.Status), Attempts: d.Attempts, MaxAttempts: d.MaxAttempts, NextRetryAt: optTime(d.NextRetryAt),
		LastResponse: d.LastResponse, LastError: d.LastError, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		DeliveredAt: optTime(d.DeliveredAt),
	}
	if d.LastStatusCode != 0 {
		c := d.LastStatusCode
		v.LastStatusCode = &c
	}
	return v
}

// IsFieldError reports whether err is invalid input.
func IsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}

// RetryDelivery re-queues a delivery for an attempt now (one more attempt if
// it had finished). tenant, when not nil, scopes the lookup.
func (s *Service) RetryDelivery(ctx context.Context, id string, tenant *string) (Delivery, error) {
	d, err := s.Store.RetryDelivery(ctx, id, tenant)
	if err != nil {
		return Delivery{}, err
	}
	return DeliveryView(d), nil
}

// RecoverEndpoint re-queues an endpoint's failed deliveries created since.
func (s *Service) RecoverEndpoint(ctx context.Context, id string, tenant *string, since time.Time) (int, error) {
	return s.Store.RecoverEndpoint(ctx, id, tenant, since)
}

// SetEndpointActive pauses or resumes an endpoint; resuming re-enables a
// disabled one.
func (s *Service) SetEndpointActive(ctx context.Context, id string, tenant *string, active bool) (Endpoint, error) {
	e, err := s.Store.SetEndpointActive(ctx, id, tenant, active)
	if err != nil {
		return Endpoint{}, err
	}
	return EndpointView(e), nil
}

// ParseSince reads a point in time given as a duration ago ("2h", "90m") or
// an RFC 3339 timestamp.
func ParseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration ago (2h, 90m) nor an RFC 3339 time", v)
}
