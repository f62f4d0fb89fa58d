// Package manage holds the management operations shared by the HTTP API and
// the command line: validating endpoint input, creating endpoints with a
// fresh secret, and the JSON views of endpoints and deliveries. Views never
// carry a secret, except the one returned by CreateEndpoint, once.
package manage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
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
}

// EndpointInput is what a caller may set on an endpoint.
type EndpointInput struct {
	URL         string            `json:"url"`
	Description string            `json:"description"`
	Events      []string          `json:"events"`
	TenantID    string            `json:"tenant_id"`
	Headers     map[string]string `json:"headers"`
}

// reservedHeaders are set by walhook on every request and cannot be overridden.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "user-agent": true,
	"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
	"x-webhook-event": true, "x-webhook-delivery": true, "x-webhook-timestamp": true, "x-webhook-signature": true,
}

// Validate checks input and normalises it.
func (s *Service) Validate(in *EndpointInput) error {
	in.URL = strings.TrimSpace(in.URL)
	if in.URL == "" {
		return &FieldError{"url", "is required"}
	}
	if len(in.URL) > 2000 {
		return &FieldError{"url", "must be at most 2000 characters"}
	}
	if _, err := s.Network.CheckURL(in.URL, s.RequireHTTPS); err != nil {
		return &FieldError{"url", err.Error()}
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
	return nil
}

// Endpoint is the JSON view of an endpoint; Secret is set only on creation.
type Endpoint struct {
	ID             string            `json:"id"`
	TenantID       string            `json:"tenant_id,omitempty"`
	URL            string            `json:"url"`
	Description    string            `json:"description"`
	Events         []string          `json:"events"`
	Headers        map[string]string `json:"headers"`
	Active         bool              `json:"active"`
	DisabledReason string            `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	Secret         string            `json:"secret,omitempty"`
}

// EndpointView renders an endpoint without its secret.
func EndpointView(e *store.Endpoint) Endpoint {
	return Endpoint{
		ID: e.ID, TenantID: e.TenantID, URL: e.URL, Description: e.Description, Events: e.EventTypes,
		Headers: e.Headers, Active: e.Active, DisabledReason: e.DisabledReason,
		CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC(),
	}
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
		Headers: in.Headers, Secret: secret, Active: true}
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
