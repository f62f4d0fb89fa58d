package manage

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/walhook/walhook/internal/store"
)

// Attempt is the JSON view of one request of a delivery.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS float64   `json:"duration_ms"`
	// StatusCode is null when no HTTP answer came (see Error).
	StatusCode *int   `json:"status_code"`
	Response   string `json:"response,omitempty"` // the answer's first characters
	Error      string `json:"error,omitempty"`
}

// AttemptView renders an attempt.
func AttemptView(a *store.Attempt) Attempt {
	v := Attempt{Attempt: a.Attempt, StartedAt: a.StartedAt.UTC(), DurationMS: float64(a.Duration.Microseconds()) / 1000,
		Response: a.Response, Error: a.Error}
	if a.StatusCode != 0 {
		c := a.StatusCode
		v.StatusCode = &c
	}
	return v
}

// Event is the JSON view of an event; Payload only when asked for one event.
type Event struct {
	ID         string          `json:"id"`
	EventType  string          `json:"event_type"`
	TenantID   string          `json:"tenant_id,omitempty"`
	OutboxID   string          `json:"outbox_id,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	ReceivedAt time.Time       `json:"received_at"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

// EventView renders an event (with its payload if it was read).
func EventView(e *store.Event) Event {
	v := Event{ID: e.ID, EventType: e.Type, TenantID: e.TenantID, OutboxID: e.OutboxID,
		CreatedAt: e.CreatedAt.UTC(), ReceivedAt: e.ReceivedAt.UTC()}
	if len(e.Payload) > 0 {
		v.Payload = json.RawMessage(e.Payload)
	}
	return v
}

// EventDetail is one event with its payload and the deliveries it fanned
// out to.
type EventDetail struct {
	Event
	Deliveries []Delivery `json:"deliveries"`
}

// maxFanOut bounds the deliveries listed with one event.
const maxFanOut = 1000

// GetEvent returns an event with its payload and deliveries.
func (s *Service) GetEvent(ctx context.Context, id string, tenant *string) (EventDetail, error) {
	e, err := s.Store.GetEvent(ctx, id, tenant)
	if err != nil {
		return EventDetail{}, err
	}
	ds, err := s.Store.ListDeliveries(ctx, store.DeliveryFilter{EventID: e.ID, Tenant: tenant, Limit: maxFanOut})
	if err != nil {
		return EventDetail{}, err
	}
	out := EventDetail{Event: EventView(e), Deliveries: []Delivery{}}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, DeliveryView(d))
	}
	return out, nil
}

// DeliveryDetail is one delivery with its attempt log.
type DeliveryDetail struct {
	Delivery
	AttemptLog []Attempt `json:"attempt_log"`
}

// GetDelivery returns a delivery with its attempts.
func (s *Service) GetDelivery(ctx context.Context, id string, tenant *string) (DeliveryDetail, error) {
	d, err := s.Store.GetDeliveryOf(ctx, id, tenant)
	if err != nil {
		return DeliveryDetail{}, err
	}
	atts, err := s.Store.ListAttempts(ctx, d.ID)
	if err != nil {
		return DeliveryDetail{}, err
	}
	out := DeliveryDetail{Delivery: DeliveryView(d), AttemptLog: []Attempt{}}
	for i := range atts {
		out.AttemptLog = append(out.AttemptLog, AttemptView(&atts[i]))
	}
	return out, nil
}

// EventType is an entry of the event type catalogue.
type EventType struct {
	Name string `json:"name"`
	// Configured: listed in config event_types.
	Configured bool `json:"configured"`
	// FirstSeenAt is when the type first came through the outbox (null:
	// never yet).
	FirstSeenAt *time.Time `json:"first_seen_at"`
}

// EventTypes returns the catalogue: the configured event types and those
// seen on the stream, by name. It is the same for every tenant: event types
// are the app's vocabulary, not a tenant's data.
func (s *Service) EventTypes(ctx context.Context) ([]EventType, error) {
	seen, err := s.Store.ListEventTypes(ctx)
	if err != nil {
		return nil, err
	}
	index := map[string]int{} // name → position in out
	out := []EventType{}
	for _, name := range s.Catalogue {
		if _, dup := index[name]; !dup {
			index[name] = len(out)
			out = append(out, EventType{Name: name, Configured: true})
		}
	}
	for _, t := range seen {
		at := t.FirstSeenAt.UTC()
		if i, ok := index[t.Name]; ok {
			out[i].FirstSeenAt = &at
			continue
		}
		out = append(out, EventType{Name: t.Name, FirstSeenAt: &at})
	}
	slices.SortFunc(out, func(a, b EventType) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}
