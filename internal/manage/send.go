package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/store"
)

// Sender makes one attempt now (delivery.Dispatcher.Send).
type Sender interface {
	Send(j *delivery.Job) (delivery.Result, error)
}

// TestEventType is the type of the events TestEndpoint sends.
const TestEventType = "webhook.test"

// ErrNoSender is returned by TestEndpoint outside a running walhook.
var ErrNoSender = errors.New("test events need a running walhook")

// TestResult is what a test send did.
type TestResult struct {
	// Delivered is true when the endpoint answered 2xx.
	Delivered bool     `json:"delivered"`
	Attempt   Attempt  `json:"attempt"`
	Delivery  Delivery `json:"delivery"`
	Event     Event    `json:"event"`
}

// TestEndpoint sends a webhook.test event to one endpoint, now, whatever its
// state (a paused or disabled endpoint can be tested before it is resumed),
// and returns the attempt. It is signed, dialed and judged like any
// delivery (same signer, rotation included, same network policy, no
// redirects), but it is one attempt, never retried, and no other endpoint
// receives it. The event, its delivery and the attempt are recorded, so the
// test shows in the delivery log and can be re-sent like any delivery.
func (s *Service) TestEndpoint(ctx context.Context, id string, tenant *string) (TestResult, error) {
	if s.Sender == nil {
		return TestResult{}, ErrNoSender
	}
	e, err := s.Store.GetEndpoint(ctx, id, tenant)
	if err != nil {
		return TestResult{}, err
	}
	ep, err := route.Compile(e)
	if err != nil {
		return TestResult{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond) // what Postgres keeps
	ev := store.Event{ID: store.NewID("evt_"), Type: TestEventType, TenantID: e.TenantID, CreatedAt: now, ReceivedAt: now, CommittedAt: now}
	ev.Payload, err = json.Marshal(map[string]string{
		"endpoint_id": e.ID,
		"message":     "This is a test event sent by walhook. It reached only this endpoint.",
	})
	if err != nil {
		return TestResult{}, fmt.Errorf("test event: %w", err)
	}
	res, err := s.Sender.Send(&delivery.Job{DeliveryID: store.DeliveryID(now, ev.ID, e.ID), Endpoint: ep,
		EventID: ev.ID, EventType: ev.Type, EventTime: ev.CreatedAt, Payload: ev.Payload})
	if err != nil {
		return TestResult{}, fmt.Errorf("test endpoint %s: %w", e.ID, err)
	}
	d := res.Delivery
	d.TenantID, d.CreatedAt = e.TenantID, now
	// Recorded even if the caller has gone: the request was made.
	if err := s.Store.RecordSent(context.WithoutCancel(ctx), &ev, &d, &res.Attempt); err != nil {
		return TestResult{}, err
	}
	return TestResult{Delivered: d.Status == store.StatusDelivered, Attempt: AttemptView(&res.Attempt),
		Delivery: DeliveryView(&d), Event: EventView(&ev)}, nil
}
