package store_test

import (
	"context"
	"errors"
	"slices"
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
