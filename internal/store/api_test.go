package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/store"
)

func TestPagesFollowTheCursorThroughEqualTimes(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Microsecond)
	var events []store.Event
	for _, id := range []string{"evt_a", "evt_b", "evt_c", "evt_d", "evt_e"} {
		events = append(events, store.Event{ID: id, Type: "t", Payload: []byte(`{}`), CreatedAt: at, ReceivedAt: at}) // one commit: one time
	}
	events = append(events, store.Event{ID: "evt_old", Type: "t", TenantID: "acme", Payload: []byte(`{}`), CreatedAt: at.Add(-time.Hour), ReceivedAt: at})
	if err := s.WriteBatch(ctx, &store.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	var got []string
	var before *store.PageKey
	for {
		page, err := s.ListEvents(ctx, store.EventFilter{Before: before, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.ID)
		}
		if len(page) < 2 {
			break
		}
		last := page[len(page)-1]
		before = &store.PageKey{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	if want := []string{"evt_e", "evt_d", "evt_c", "evt_b", "evt_a", "evt_old"}; !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	acme := "acme"
	for _, f := range []store.EventFilter{{Tenant: &acme}, {Until: at}, {Since: at.Add(-time.Minute), Until: at.Add(time.Microsecond), Limit: 1}} {
		page, err := s.ListEvents(ctx, f)
		if err != nil || len(page) != 1 {
			t.Fatalf("filter %+v: %d events, %v", f, len(page), err)
		}
	}
	if _, err := s.GetEvent(ctx, "evt_old", new(string)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's event: %v", err)
	}
}

func TestUpdateEndpointWritesNothingWhenTheChangeFails(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	e := &store.Endpoint{URL: "https://example.com", EventTypes: []string{"*"}, Secret: "whsec_AAAA", Active: true, TenantID: "acme"}
	if err := s.CreateEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	_, err := s.UpdateEndpoint(ctx, e.ID, nil, func(e *store.Endpoint) error {
		e.URL = "https://changed.example.com"
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("err = %v, want the change's error", err)
	}
	globex := "globex"
	if _, err := s.UpdateEndpoint(ctx, e.ID, &globex, func(*store.Endpoint) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's update: %v", err)
	}
	got, err := s.GetEndpoint(ctx, e.ID, nil)
	if err != nil || got.URL != "https://example.com" {
		t.Fatalf("after refused updates: %+v, %v", got, err)
	}
}

func TestRotationsAndTheirExpiry(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	mk := func(secret string) *store.Endpoint {
		e := &store.Endpoint{URL: "https://example.com", EventTypes: []string{"*"}, Secret: secret, Active: true}
		if err := s.CreateEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	short, long, immediate := mk("whsec_s1"), mk("whsec_l1"), mk("whsec_i1")
	rotate := func(e *store.Endpoint, secret string, overlap time.Duration) *store.Endpoint {
		got, err := s.RotateSecret(ctx, e.ID, nil, secret, overlap)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := rotate(short, "whsec_s2", time.Minute); got.Secret != "whsec_s2" || got.PreviousSecret != "whsec_s1" {
		t.Fatalf("rotated: %+v", got)
	}
	if got := rotate(long, "whsec_l2", time.Hour); got.PreviousSecretExpiresAt.Before(time.Now().Add(59 * time.Minute)) {
		t.Fatalf("an hour's overlap ends at %s", got.PreviousSecretExpiresAt)
	}
	if got := rotate(immediate, "whsec_i2", 0); got.PreviousSecret != "" || !got.PreviousSecretExpiresAt.IsZero() {
		t.Fatalf("a 0s overlap kept %+v", got)
	}

	expired, next, err := s.ExpirePreviousSecrets(ctx, time.Now())
	if err != nil || len(expired) != 0 || next.After(time.Now().Add(time.Minute)) || next.Before(time.Now()) {
		t.Fatalf("nothing due yet: expired %v, next %s, %v", expired, next, err)
	}
	expired, next, err = s.ExpirePreviousSecrets(ctx, time.Now().Add(2*time.Minute))
	if err != nil || !slices.Equal(expired, []string{short.ID}) || next.Before(time.Now().Add(59*time.Minute)) {
		t.Fatalf("after two minutes: expired %v, next %s, %v", expired, next, err)
	}
	if got, _ := s.GetEndpoint(ctx, short.ID, nil); got.PreviousSecret != "" || got.Secret != "whsec_s2" {
		t.Fatalf("expired endpoint: %+v", got)
	}
	if _, err := s.RotateSecret(ctx, "ep_nobody", nil, "whsec_x", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotate unknown: %v", err)
	}
}

// TestAnEventsDeliveriesAreFoundByItsCommitTime lists the deliveries of
// events recorded before migration 0009 (which backfills their commit
// times from the delivery ids) and after it: an event's deliveries are the
// ids that begin with its commit time, and of those, its own.
func TestAnEventsDeliveriesAreFoundByItsCommitTime(t *testing.T) {
	s := openAt(t, 8)
	ctx := context.Background()
	t1 := time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)
	id := store.DeliveryID
	// Before 0009: created_at was when walhook recorded a delivery, after
	// the commit time its id carries.
	legacy := []struct{ event, endpoint string }{{"evt_l1", "ep_a"}, {"evt_l1", "ep_b"}, {"evt_l2", "ep_a"}}
	for _, l := range legacy {
		if _, err := s.Pool().Exec(ctx, `INSERT INTO events (id, event_type, payload, lsn, created_at, received_at)
				VALUES ($1, 't', '{}', 1, $2, $2) ON CONFLICT DO NOTHING`, l.event, t1.Add(5*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pool().Exec(ctx, `INSERT INTO deliveries (id, endpoint_id, event_id, event_type, status, max_attempts, created_at, updated_at)
				VALUES ($1, $2, $3, 't', 'delivered', 5, $4, $4)`, id(t1, l.event, l.endpoint), l.endpoint, l.event, t1.Add(5*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool().Exec(ctx, `INSERT INTO events (id, event_type, payload, lsn, created_at, received_at)
			VALUES ('evt_l3', 't', '{}', 1, $1, $1)`, t1); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// After: a big batch (written by COPY) with evt_n1, evt_n2 and 70
	// events of a later commit, a small one (unnest) with evt_n3, and a
	// test send (RecordSent).
	t2, sent, t3 := t1.Add(time.Hour), t1.Add(2*time.Hour), t1.Add(3*time.Hour)
	type ev struct {
		event     string
		committed time.Time
		endpoints []string
	}
	batch := func(evs []ev) *store.Batch {
		b := &store.Batch{}
		for _, e := range evs {
			b.Events = append(b.Events, store.Event{ID: e.event, Type: "t", Payload: []byte(`{}`), CreatedAt: t1, ReceivedAt: sent, CommittedAt: e.committed})
			for _, ep := range e.endpoints {
				b.Deliveries = append(b.Deliveries, store.Delivery{ID: id(e.committed, e.event, ep), EndpointID: ep, EventID: e.event,
					EventType: "t", Status: store.StatusPending, MaxAttempts: 5, CreatedAt: e.committed, UpdatedAt: sent})
			}
		}
		return b
	}
	big := []ev{{"evt_n1", t2, []string{"ep_a", "ep_b", "ep_c"}}, {"evt_n2", t2, []string{"ep_a"}}}
	for i := range 70 {
		big = append(big, ev{fmt.Sprintf("evt_f%02d", i), t3, []string{"ep_a"}})
	}
	for _, b := range []*store.Batch{batch(big), batch([]ev{{"evt_n3", t2, []string{"ep_b"}}})} {
		if err := s.WriteBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	testSend := batch([]ev{{"evt_sent", sent, []string{"ep_b"}}})
	d := testSend.Deliveries[0]
	d.Status, d.Attempts, d.LastStatusCode = store.StatusDelivered, 1, 200
	if err := s.RecordSent(ctx, &testSend.Events[0], &d, &store.Attempt{DeliveryID: d.ID, Attempt: 1, EndpointID: d.EndpointID, StartedAt: sent, StatusCode: 200}); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name, event string
		want        []string
	}{
		{"recorded before, two endpoints", "evt_l1", []string{id(t1, "evt_l1", "ep_a"), id(t1, "evt_l1", "ep_b")}},
		{"recorded before, same commit as another", "evt_l2", []string{id(t1, "evt_l2", "ep_a")}},
		{"recorded before, no subscriber", "evt_l3", nil},
		{"recorded after, three endpoints", "evt_n1", []string{id(t2, "evt_n1", "ep_a"), id(t2, "evt_n1", "ep_b"), id(t2, "evt_n1", "ep_c")}},
		{"recorded after, same commit as another", "evt_n2", []string{id(t2, "evt_n2", "ep_a")}},
		{"recorded after in a small batch", "evt_n3", []string{id(t2, "evt_n3", "ep_b")}},
		{"recorded after, among many of a later commit", "evt_f07", []string{id(t3, "evt_f07", "ep_a")}},
		{"a test send", "evt_sent", []string{id(sent, "evt_sent", "ep_b")}},
		{"no such event", "evt_none", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			list, err := s.ListDeliveries(ctx, store.DeliveryFilter{EventID: tt.event})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range list {
				got = append(got, d.ID)
			}
			want := slices.Clone(tt.want)
			slices.Sort(want)
			slices.Reverse(want) // newest first: descending ids
			if !slices.Equal(got, want) {
				t.Fatalf("deliveries of %s = %v, want %v", tt.event, got, want)
			}
		})
	}
	t.Run("every list is in creation order, then by id", func(t *testing.T) {
		list, err := s.ListDeliveries(ctx, store.DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var times []time.Time
		var ids []string
		for _, d := range list {
			times, ids = append(times, d.CreatedAt), append(ids, d.ID)
		}
		if len(list) != 79 || !slices.IsSortedFunc(times, func(a, b time.Time) int { return b.Compare(a) }) ||
			!slices.IsSortedFunc(ids, func(a, b string) int { return strings.Compare(b, a) }) {
			t.Fatalf("%d deliveries, created at %v, ids %v; want 79, newest first and by id descending", len(list), times, ids)
		}
		since, err := s.ListDeliveries(ctx, store.DeliveryFilter{Since: t2, Until: sent})
		if err != nil || len(since) != 5 {
			t.Fatalf("created in [t2, sent): %d deliveries, %v; want evt_n1's, evt_n2's and evt_n3's 5", len(since), err)
		}
	})
}
