package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/app"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/waitfor"
)

// endpointRow reads an endpoint as stored.
func endpointRow(t *testing.T, s *app.Server, id string) *store.Endpoint {
	t.Helper()
	e, err := s.Store.GetEndpoint(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// failWhileOn makes the receiver answer code to every request while the
// returned switch is on; it starts on.
func failWhileOn(rcv *receiver, code int) *atomic.Bool {
	var on atomic.Bool
	on.Store(true)
	rcv.fail = func(string, int) int {
		if on.Load() {
			return code
		}
		return 0
	}
	return &on
}

func sumAttempts(t *testing.T, s *app.Server) int {
	t.Helper()
	var n int
	if err := s.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM attempt_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCircuitBreakerParksDeliveriesUntilAProbeSucceeds(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.RetrySchedule = []time.Duration{time.Second}
	cfg.Delivery.MaxAttempts = 20
	cfg.Delivery.CircuitBreaker.Failures = 3
	cfg.Delivery.CircuitBreaker.Cooldown = 300 * time.Millisecond
	cfg.Delivery.CircuitBreaker.MaxCooldown = 600 * time.Millisecond
	cfg.Delivery.EndpointInflight = 1 // attempts one at a time, so the count of failures before opening is exact
	s := start(t, cfg)
	defer s.Stop()

	rcv := newReceiver(t)
	down := failWhileOn(rcv, http.StatusInternalServerError)
	subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	insertEvents(t, db.DSN, 50, "order.created", true)

	// Three failures open the circuit; the other deliveries wait without
	// spending attempts, and probes go out one at a time.
	waitfor.True(t, "the circuit to open", 10*time.Second, func() bool { return rcv.requests() >= 4 })
	time.Sleep(time.Second) // a window in which a closed circuit would have sent all 50
	// 3 failures, then one probe per cooldown (300ms, then 600ms).
	if n := rcv.requests(); n > 3+6 {
		t.Fatalf("%d requests reached a failing endpoint; the open circuit should let only probes through", n)
	}
	down.Store(false)
	waitfor.True(t, "all 50 delivered once the endpoint recovers", 20*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 50
	})
	if n := sumAttempts(t, s); n > 50+10 {
		t.Errorf("%d attempts recorded for 50 deliveries; parked deliveries must not spend attempts", n)
	}
}

func TestGoneDisablesTheEndpointAndReenablingResumes(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	s := start(t, cfg)
	defer s.Stop()

	rcv := newReceiver(t)
	gone := failWhileOn(rcv, http.StatusGone)
	ep := subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	insertEvents(t, db.DSN, 1, "order.created", true)
	waitfor.True(t, "the endpoint to be disabled", 10*time.Second, func() bool { return !endpointRow(t, s, ep.ID).Active })
	e := endpointRow(t, s, ep.ID)
	if !strings.Contains(e.DisabledReason, "410") || e.DisabledAt.IsZero() {
		t.Fatalf("disabled endpoint: reason %q at %v; want the 410 named and a time", e.DisabledReason, e.DisabledAt)
	}
	waitfor.True(t, "the delivery to fail without retries", 5*time.Second, func() bool { return countStatus(t, s.Store, store.StatusFailed) == 1 })

	// A disabled endpoint gets no new deliveries until re-enabled.
	insertEvents(t, db.DSN, 1, "order.created", true)
	time.Sleep(300 * time.Millisecond)
	if n := rcv.requests(); n != 1 {
		t.Fatalf("a disabled endpoint received %d requests, want 1", n)
	}
	gone.Store(false)
	if _, err := app.Service(cfg, s.Store).SetEndpointActive(context.Background(), ep.ID, nil, true); err != nil {
		t.Fatal(err)
	}
	// Wait for the stream to carry the change before the next event.
	waitfor.True(t, "the router to see the endpoint enabled", 5*time.Second, func() bool {
		e, ok := s.Router.Table().Get(ep.ID)
		return ok && e.Active
	})
	insertEvents(t, db.DSN, 1, "order.created", true)
	waitfor.True(t, "a delivery after re-enabling", 10*time.Second, func() bool { return countStatus(t, s.Store, store.StatusDelivered) == 1 })
}

func TestEndpointFailingLongerThanDisableAfterIsDisabled(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.RetrySchedule = []time.Duration{100 * time.Millisecond}
	cfg.Delivery.RetryJitter = 0
	cfg.Delivery.MaxAttempts = 100
	cfg.Delivery.CircuitBreaker.Failures = 0
	cfg.Endpoint.DisableAfter = time.Second
	s := start(t, cfg)
	defer s.Stop()

	rcv := newReceiver(t)
	rcv.fail = func(string, int) int { return http.StatusBadGateway }
	ep := subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	insertEvents(t, db.DSN, 1, "order.created", true)
	waitfor.True(t, "failing_since to be recorded", 5*time.Second, func() bool { return !endpointRow(t, s, ep.ID).FailingSince.IsZero() })
	waitfor.True(t, "the endpoint to be disabled", 10*time.Second, func() bool { return !endpointRow(t, s, ep.ID).Active })
	if e := endpointRow(t, s, ep.ID); !strings.Contains(e.DisabledReason, "every attempt failed since") {
		t.Fatalf("reason %q", e.DisabledReason)
	}
	// The delivery is held, not failed: re-enabling sends it.
	rcv.mu.Lock()
	rcv.fail = nil
	rcv.mu.Unlock()
	if _, err := app.Service(cfg, s.Store).SetEndpointActive(context.Background(), ep.ID, nil, true); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, "the held delivery to be delivered after re-enabling", 10*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 1
	})
	if e := endpointRow(t, s, ep.ID); !e.FailingSince.IsZero() || e.DisabledReason != "" {
		t.Fatalf("after success: failing_since %v, reason %q; want both cleared", e.FailingSince, e.DisabledReason)
	}
}

func TestRetryPolicyPerEndpoint(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.CircuitBreaker.Failures = 0
	s := start(t, cfg)
	defer s.Stop()

	strict, lenient := newReceiver(t), newReceiver(t)
	for _, r := range []*receiver{strict, lenient} {
		r.fail = func(string, int) int { return http.StatusBadRequest }
	}
	no := false
	subscribeWith(t, cfg, s, strict, manage.EndpointInput{URL: strict.srv.URL, Events: []string{"*"}, RetryClientErrors: &no, MaxAttempts: 7})
	subscribeWith(t, cfg, s, lenient, manage.EndpointInput{URL: lenient.srv.URL, Events: []string{"*"}, RetrySchedule: []string{"90m"}})
	before := time.Now()
	insertEvents(t, db.DSN, 1, "order.created", true)
	waitfor.True(t, "both attempted", 10*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusFailed)+countStatus(t, s.Store, store.StatusRetrying) == 2
	})
	ds, err := s.Store.ListDeliveries(context.Background(), store.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		switch {
		case d.MaxAttempts == 7:
			if d.Status != store.StatusFailed || d.Attempts != 1 {
				t.Errorf("no-retry-on-4xx endpoint: %s after %d attempts, want failed after 1", d.Status, d.Attempts)
			}
		default:
			wait := d.NextRetryAt.Sub(before)
			if d.Status != store.StatusRetrying || wait < 70*time.Minute || wait > 110*time.Minute {
				t.Errorf("default endpoint with its own schedule: %s, next retry in %s; want retrying in 90m ±20%%", d.Status, wait)
			}
		}
	}
}

func TestPausedEndpointHoldsRetriesUntilResumed(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.RetrySchedule = []time.Duration{1500 * time.Millisecond}
	cfg.Delivery.RetryJitter = 0
	cfg.Delivery.CircuitBreaker.Failures = 0
	s := start(t, cfg)
	defer s.Stop()

	rcv := newReceiver(t)
	rcv.fail = func(_ string, n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	ep := subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	insertEvents(t, db.DSN, 3, "order.created", true)
	waitfor.True(t, "3 retrying", 5*time.Second, func() bool { return countStatus(t, s.Store, store.StatusRetrying) == 3 })
	svc := app.Service(cfg, s.Store)
	if _, err := svc.SetEndpointActive(context.Background(), ep.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the retries fall due while paused
	if n := rcv.requests(); n != 3 {
		t.Fatalf("a paused endpoint received %d requests, want the 3 first attempts only", n)
	}
	if _, err := svc.SetEndpointActive(context.Background(), ep.ID, nil, true); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, "the held retries to be delivered after resuming", 10*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 3
	})
}

func TestManualRetryAndRecoverRequeueFailedDeliveries(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.MaxAttempts = 1
	cfg.Delivery.CircuitBreaker.Failures = 0
	s := start(t, cfg)
	defer s.Stop()

	rcv := newReceiver(t)
	down := failWhileOn(rcv, http.StatusInternalServerError)
	ep := subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	insertEvents(t, db.DSN, 5, "order.created", true)
	waitfor.True(t, "5 failed", 10*time.Second, func() bool { return countStatus(t, s.Store, store.StatusFailed) == 5 })
	down.Store(false)

	ctx := context.Background()
	svc := app.Service(cfg, s.Store)
	ds, err := s.Store.ListDeliveries(ctx, store.DeliveryFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := svc.RetryDelivery(ctx, ds[0].ID, nil)
	if err != nil || d.Status != "retrying" || d.MaxAttempts != 2 {
		t.Fatalf("retry: %+v, %v; want retrying with one more attempt allowed", d, err)
	}
	waitfor.True(t, "the retried delivery to be delivered", 10*time.Second, func() bool { return countStatus(t, s.Store, store.StatusDelivered) == 1 })
	atts, err := s.Store.ListAttempts(ctx, ds[0].ID)
	if err != nil || len(atts) != 2 || atts[0].StatusCode != 500 || atts[1].StatusCode != 200 {
		t.Fatalf("attempts log of the retried delivery = %+v, %v; want 500 then 200", atts, err)
	}

	other := "someone-else"
	if _, err := svc.RecoverEndpoint(ctx, ep.ID, &other, time.Now().Add(-time.Hour)); err != store.ErrNotFound {
		t.Fatalf("recover as another tenant: %v, want not found", err)
	}
	n, err := svc.RecoverEndpoint(ctx, ep.ID, nil, time.Now().Add(-time.Hour))
	if err != nil || n != 4 {
		t.Fatalf("recover = %d, %v; want the 4 still failed", n, err)
	}
	waitfor.True(t, "all 5 delivered after recovery", 10*time.Second, func() bool { return countStatus(t, s.Store, store.StatusDelivered) == 5 })
	if _, err := svc.RetryDelivery(ctx, "msg_nope", nil); err != store.ErrNotFound {
		t.Fatalf("retry of an unknown id: %v", err)
	}
}

func TestSlowEndpointDoesNotDelayAFastOne(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.Timeout = 2 * time.Second
	s := start(t, cfg)
	defer s.Stop()

	release := make(chan struct{})
	defer close(release)
	var slowHits atomic.Int64
	slow := newReceiver(t)
	slow.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		select { // hang until walhook gives up
		case <-release:
		case <-r.Context().Done():
		}
	})
	fast := newReceiver(t)
	subscribe(t, cfg, s, slow, slow.srv.URL, "*")
	subscribe(t, cfg, s, fast, fast.srv.URL, "*")

	started := time.Now()
	insertEvents(t, db.DSN, 2000, "order.created", true)
	waitfor.True(t, "the fast endpoint to receive all 2000", time.Minute, func() bool { return fast.distinct() == 2000 })
	took := time.Since(started)
	t.Logf("fast endpoint: 2000 deliveries in %s while the slow one hung (%d requests reached it)", took, slowHits.Load())
	// About a second here (3 s under -race); sharing the slow one's fate
	// would take 2000 timeouts of 2 s over 8 connections: over 8 minutes.
	if took > 30*time.Second {
		t.Errorf("the fast endpoint took %s; a hanging endpoint must not hold it back", took)
	}
	// The slow one's circuit opened: far fewer than 2000 requests hung.
	if n := slowHits.Load(); n > int64(cfg.Delivery.EndpointInflight)*3 {
		t.Errorf("%d requests reached the hanging endpoint; its circuit should have opened", n)
	}
}

func TestABusySlowEndpointNeitherHoldsTheStreamNorLosesItsBacklog(t *testing.T) {
	// An endpoint that answers, but slowly (100 ms, so 80 requests/s over
	// its 8 connections), is not stuck: the stream must still not wait for
	// it (a fast endpoint would get its events at 80/s), and what it cannot
	// take in memory is parked and comes back until all is delivered.
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.QueueLimit = 300 // so that the backlog is parked, not only queued
	s := start(t, cfg)
	defer s.Stop()
	slow := newReceiver(t)
	inner := slow.srv.Config.Handler
	slow.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		inner.ServeHTTP(w, r)
	})
	fast := newReceiver(t)
	subscribe(t, cfg, s, slow, slow.srv.URL, "*")
	subscribe(t, cfg, s, fast, fast.srv.URL, "*")

	const n = 1000
	started := time.Now()
	insertEvents(t, db.DSN, n, "order.created", true)
	waitfor.True(t, "the fast endpoint to receive all", time.Minute, func() bool { return fast.distinct() == n })
	took := time.Since(started)
	t.Logf("fast endpoint: %d deliveries in %s; the slow one had %d by then", n, took, slow.distinct())
	// At the slow one's pace this would take 12.5 s.
	if took > 6*time.Second {
		t.Errorf("the fast endpoint took %s: the stream waited for a slow endpoint", took)
	}
	waitfor.True(t, "the slow endpoint to receive all, parked ones included", time.Minute, func() bool { return slow.distinct() == n })
	// A receiver has a request before walhook has recorded its answer.
	waitfor.True(t, "every delivery recorded as delivered", 10*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 2*n
	})
}

func TestFirstAttemptsFailThenSucceedWithExactAttemptCounts(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.RetrySchedule = []time.Duration{100 * time.Millisecond}
	cfg.Delivery.RetryJitter = 0
	cfg.Delivery.MaxAttempts = 5
	cfg.Delivery.CircuitBreaker.Failures = 0
	s := start(t, cfg)
	defer s.Stop()

	// Event n fails its first n%4 attempts with 500, then gets 200.
	rcv := newReceiver(t)
	rcv.fail = func(id string, attempt int) int {
		rcv.mu.Lock()
		n := eventN(rcv.bodies[id])
		rcv.mu.Unlock()
		if attempt <= n%4 {
			return http.StatusInternalServerError
		}
		return 0
	}
	subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	insertEvents(t, db.DSN, 40, "order.created", true)
	waitfor.True(t, "all 40 delivered", 30*time.Second, func() bool { return countStatus(t, s.Store, store.StatusDelivered) == 40 })

	rows, err := s.Store.Pool().Query(context.Background(), `SELECT (e.payload->>'n')::int, d.attempts, (SELECT count(*) FROM attempt_log a WHERE a.delivery_id = d.id)
		FROM deliveries d JOIN events e ON e.id = d.event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n, attempts, logged int
		if err := rows.Scan(&n, &attempts, &logged); err != nil {
			t.Fatal(err)
		}
		if want := n%4 + 1; attempts != want || logged != want {
			t.Errorf("event %d: %d attempts, %d in the log; want %d", n, attempts, logged, want)
		}
	}
}

// eventN reads "n" from a webhook body's data.
func eventN(body []byte) int {
	var env struct{ Data struct{ N int } }
	_ = json.Unmarshal(body, &env)
	return env.Data.N
}
