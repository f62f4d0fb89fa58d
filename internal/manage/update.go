package manage

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/store"
)

// EndpointPatch is a partial update: nil fields are left as they are.
type EndpointPatch struct {
	URL               *string            `json:"url"`
	Description       *string            `json:"description"`
	Events            *[]string          `json:"events"`
	Headers           *map[string]string `json:"headers"`
	RetrySchedule     *[]string          `json:"retry_schedule"` // [] returns to the configured default
	MaxAttempts       *int               `json:"max_attempts"`   // 0 returns to the configured default
	RetryClientErrors *bool              `json:"retry_client_errors"`
	RateLimit         *int               `json:"rate_limit"` // 0: unlimited
	// Active false pauses the endpoint; true resumes it, and re-enables it
	// if it was disabled (clearing the reason and the failure run).
	Active *bool `json:"active"`
	// TenantID cannot change; it is accepted only when equal to the
	// endpoint's, so a client may send back what it read.
	TenantID *string `json:"tenant_id"`
}

// inputOf is the input that would create e as it is.
func inputOf(e *store.Endpoint) EndpointInput {
	retry4xx := e.RetryClientErrors
	in := EndpointInput{URL: e.URL, Description: e.Description, Events: append([]string(nil), e.EventTypes...),
		TenantID: e.TenantID, Headers: map[string]string{}, MaxAttempts: e.MaxAttempts,
		RetryClientErrors: &retry4xx, RateLimit: e.RateLimit}
	for k, v := range e.Headers {
		in.Headers[k] = v
	}
	for _, d := range e.RetrySchedule {
		in.RetrySchedule = append(in.RetrySchedule, d.String())
	}
	return in
}

// UpdateEndpoint applies a patch, validated like creation input (the URL's
// scheme and destination are checked only when the patch changes it). The
// change reaches a running walhook through the replication stream; changing
// the URL also closes the endpoint's circuit there.
func (s *Service) UpdateEndpoint(ctx context.Context, id string, tenant *string, p EndpointPatch) (Endpoint, error) {
	e, err := s.Store.UpdateEndpoint(ctx, id, tenant, func(e *store.Endpoint) error {
		if p.TenantID != nil && *p.TenantID != e.TenantID {
			return &FieldError{"tenant_id", "cannot be changed: create an endpoint for the other tenant instead"}
		}
		in := inputOf(e)
		if p.URL != nil {
			in.URL = *p.URL
		}
		if p.Description != nil {
			in.Description = *p.Description
		}
		if p.Events != nil {
			in.Events = *p.Events
		}
		if p.Headers != nil {
			in.Headers = *p.Headers
		}
		if p.RetrySchedule != nil {
			in.RetrySchedule = *p.RetrySchedule
		}
		if p.MaxAttempts != nil {
			in.MaxAttempts = *p.MaxAttempts
		}
		if p.RetryClientErrors != nil {
			in.RetryClientErrors = p.RetryClientErrors
		}
		if p.RateLimit != nil {
			in.RateLimit = *p.RateLimit
		}
		if err := s.validate(&in, p.URL != nil && *p.URL != e.URL); err != nil {
			return err
		}
		e.URL, e.Description, e.EventTypes, e.Headers = in.URL, in.Description, in.Events, in.Headers
		e.RetrySchedule, e.MaxAttempts, e.RetryClientErrors, e.RateLimit = in.schedule, in.MaxAttempts, *in.RetryClientErrors, in.RateLimit
		switch {
		case p.Active == nil:
		case *p.Active && !e.Active:
			e.Active, e.DisabledReason, e.DisabledAt, e.FailingSince = true, "", time.Time{}, time.Time{}
		case !*p.Active:
			e.Active = false // a disabled endpoint stays disabled, with its reason
		}
		return nil
	})
	if err != nil {
		return Endpoint{}, err
	}
	return EndpointView(e), nil
}

// DeleteEndpoint deletes an endpoint; its delivery history stays.
func (s *Service) DeleteEndpoint(ctx context.Context, id string, tenant *string) error {
	return s.Store.DeleteEndpoint(ctx, id, tenant)
}

// MaxSecretOverlap bounds the overlap a rotation may ask for.
const MaxSecretOverlap = 30 * 24 * time.Hour

// RotateSecret gives an endpoint a new secret, returned in the view this
// once. The old secret keeps signing beside it (webhook-signature carries
// both signatures, space-separated) for overlap, or SecretOverlap when
// overlap is nil; an overlap of 0 retires it at once.
func (s *Service) RotateSecret(ctx context.Context, id string, tenant *string, overlap *time.Duration) (Endpoint, error) {
	d := s.SecretOverlap
	if overlap != nil {
		d = *overlap
	}
	if d < 0 || d > MaxSecretOverlap {
		return Endpoint{}, &FieldError{"overlap", fmt.Sprintf("must be between 0s and %s", MaxSecretOverlap)}
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return Endpoint{}, fmt.Errorf("generate secret: %w", err)
	}
	e, err := s.Store.RotateSecret(ctx, id, tenant, secret, d)
	if err != nil {
		return Endpoint{}, err
	}
	s.wakeExpiry()
	v := EndpointView(e)
	v.Secret = secret
	return v, nil
}

func (s *Service) wakeChan() chan struct{} {
	s.wakeOnce.Do(func() { s.wake = make(chan struct{}, 1) })
	return s.wake
}

func (s *Service) wakeExpiry() {
	select {
	case s.wakeChan() <- struct{}{}:
	default:
	}
}

// expiryCheck is the longest the secret expiry sleeps: rotations made by
// another process (CLI, another walhook) are noticed within it.
const expiryCheck = time.Minute

// RunSecretExpiry ends rotation overlaps on time until ctx ends: it clears
// each previous secret when its overlap ends, which reloads the endpoint in
// the running walhook (endpoints are streamed), so the old secret stops
// signing within moments of the end, not at the next restart. It sleeps
// until the next end (at most a minute; at once after a RotateSecret of this
// Service). route.Compile also ignores an expired previous secret, so a
// walhook that was down at the end never signs with it again.
func (s *Service) RunSecretExpiry(ctx context.Context, log *slog.Logger) {
	wake := s.wakeChan()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		wait := expiryCheck
		ids, next, err := s.Store.ExpirePreviousSecrets(ctx, time.Now())
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("secret expiry failed; trying again", "err", err)
			wait = 5 * time.Second
		case !next.IsZero():
			wait = min(wait, max(time.Until(next), 10*time.Millisecond))
		}
		for _, id := range ids {
			log.Info("previous secret of endpoint expired", "endpoint_id", id)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}
