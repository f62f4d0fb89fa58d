package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walhook/walhook/internal/app"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/metrics"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/waitfor"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const token = "test-token-0123456789"

func testConfig(t *testing.T, dsn string) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.Database.URL = dsn
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.Tokens = []string{token}
	cfg.Delivery.AllowPrivateNetworks = true // receivers are httptest servers on loopback
	cfg.Delivery.Timeout = 2 * time.Second
	cfg.Replication.StatusInterval = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// receiver records webhook requests, verifying both signature schemes.
type receiver struct {
	t      *testing.T
	secret string
	fail   func(id string, n int) int // status to answer for the n-th request of id; 0 = 200

	mu       sync.Mutex
	byID     map[string]int
	bodies   map[string][]byte
	badSigns int
	srv      *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, byID: map[string]int{}, bodies: map[string][]byte{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	secret := r.secret
	r.byID[id]++
	n := r.byID[id]
	r.bodies[id] = body
	if signature.Verify(secret, req.Header, body, time.Now(), signature.DefaultTolerance) != nil ||
		signature.VerifyLegacy(secret, req.Header, body, time.Now(), signature.DefaultTolerance) != nil ||
		req.Header.Get("X-Webhook-Delivery") != id || req.Header.Get("X-Webhook-Event") == "" {
		r.badSigns++
	}
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if code := fail(id, n); code != 0 {
			w.WriteHeader(code)
			fmt.Fprint(w, "nope")
			return
		}
	}
	fmt.Fprint(w, "ok")
}

// requests counts every request received.
func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.byID {
		n += c
	}
	return n
}

func (r *receiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

// subscribe creates an endpoint for rcv and lets rcv verify with its secret.
func subscribe(t *testing.T, cfg *config.Config, s *app.Server, rcv *receiver, url string, patterns ...string) manage.Endpoint {
	t.Helper()
	return subscribeWith(t, cfg, s, rcv, manage.EndpointInput{URL: url, Events: patterns})
}

// subscribeWith is subscribe with every endpoint setting.
func subscribeWith(t *testing.T, cfg *config.Config, s *app.Server, rcv *receiver, in manage.EndpointInput) manage.Endpoint {
	t.Helper()
	ep, err := app.Service(cfg, s.Store).CreateEndpoint(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	rcv.secret = ep.Secret
	rcv.mu.Unlock()
	return ep
}

func start(t *testing.T, cfg *config.Config) *app.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var w io.Writer = io.Discard
	if os.Getenv("WALHOOK_TEST_LOG") != "" {
		w = os.Stderr
	}
	s, err := app.Start(ctx, cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func insertEvents(t *testing.T, dsn string, n int, eventType string, commit bool) {
	t.Helper()
	ctx := context.Background()
	conn := pgtest.Connect(t, dsn)
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_outbox (event_type, payload) VALUES ($1, $2)`, eventType, fmt.Sprintf(`{"n": %d, "html": "<script>x</script>"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if commit {
		err = tx.Commit(ctx)
	} else {
		err = tx.Rollback(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func countStatus(t *testing.T, st *store.Store, status store.Status) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM deliveries WHERE status = $1`, string(status)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func apiGet(t *testing.T, s *app.Server, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.APIAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestCommittedEventsArriveSignedAndRolledBackOnesNever(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	s := start(t, cfg)
	defer s.Stop()

	rcv := newReceiver(t)
	ep := subscribe(t, cfg, s, rcv, rcv.srv.URL+"/hook", "order.*")

	// The endpoint reaches the router through the stream, in commit order:
	// an event committed after the endpoint must be delivered to it.
	insertEvents(t, db.DSN, 50, "order.created", true)
	insertEvents(t, db.DSN, 30, "order.created", false) // rolled back: never delivered
	insertEvents(t, db.DSN, 20, "user.created", true)   // no subscriber
	insertEvents(t, db.DSN, 50, "order.paid", true)

	waitfor.True(t, "100 deliveries recorded as delivered", 20*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 100
	})
	if got := rcv.distinct(); got != 100 {
		t.Fatalf("receiver saw %d distinct webhook-ids, want 100", got)
	}
	rcv.mu.Lock()
	bad := rcv.badSigns
	var sample []byte
	for _, b := range rcv.bodies {
		sample = b
		break
	}
	rcv.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d requests failed signature verification", bad)
	}
	var env struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(sample, &env); err != nil || env.Type == "" || env.Timestamp.IsZero() || !bytes.Contains(env.Data, []byte(`"n"`)) {
		t.Fatalf("envelope %s: %+v, %v", sample, env, err)
	}

	var list struct {
		Data []manage.Delivery `json:"data"`
	}
	if code := apiGet(t, s, "/webhooks/api/deliveries?endpoint_id="+ep.ID, &list); code != 200 || len(list.Data) != 50 {
		t.Fatalf("API list: code %d, %d deliveries (default page 50)", code, len(list.Data))
	}
	d := list.Data[0]
	if d.Status != "delivered" || d.Attempts != 1 || d.LastStatusCode == nil || *d.LastStatusCode != 200 || d.LastResponse != "ok" {
		t.Fatalf("delivery view = %+v", d)
	}
}

func TestFailingReceiverIsRetriedOnSchedule(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.RetrySchedule = []time.Duration{time.Hour}
	cfg.Delivery.RetryJitter = 0
	s := start(t, cfg)
	defer s.Stop()

	rcv := newReceiver(t)
	rcv.fail = func(string, int) int { return http.StatusInternalServerError }
	subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	before := time.Now()
	insertEvents(t, db.DSN, 3, "payment.failed", true)
	waitfor.True(t, "3 deliveries retrying", 20*time.Second, func() bool { return countStatus(t, s.Store, store.StatusRetrying) == 3 })
	ds, err := s.Store.ListDeliveries(context.Background(), store.DeliveryFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		wait := d.NextRetryAt.Sub(before)
		if d.Attempts != 1 || d.LastStatusCode != 500 || d.LastResponse != "nope" || wait < time.Hour || wait > time.Hour+time.Minute {
			t.Fatalf("delivery %+v: want 1 attempt, code 500, next retry in 1h (got %s)", d, wait)
		}
		atts, err := s.Store.ListAttempts(context.Background(), d.ID)
		if err != nil || len(atts) != 1 || atts[0].StatusCode != 500 {
			t.Fatalf("attempts = %+v, %v", atts, err)
		}
	}
}

func TestRetriesEndDeliveredOrFailed(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.RetrySchedule = []time.Duration{200 * time.Millisecond}
	cfg.Delivery.RetryJitter = 0
	cfg.Delivery.MaxAttempts = 3
	cfg.Delivery.CircuitBreaker.Failures = 0 // every attempt goes out: the counts are exact
	s := start(t, cfg)
	defer s.Stop()

	rcv := newReceiver(t)
	subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	// Even events recover on the second attempt; odd ones never do.
	rcv.fail = func(id string, n int) int {
		rcv.mu.Lock()
		body := string(rcv.bodies[id])
		rcv.mu.Unlock()
		var env struct{ Data struct{ N int } }
		_ = json.Unmarshal([]byte(body), &env)
		if env.Data.N%2 == 1 || n < 2 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	insertEvents(t, db.DSN, 10, "order.created", true)
	waitfor.True(t, "5 delivered and 5 failed", 30*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 5 && countStatus(t, s.Store, store.StatusFailed) == 5
	})
	var delivered, failed int
	if err := s.Store.Pool().QueryRow(context.Background(), `SELECT
		count(*) FILTER (WHERE status = 'delivered' AND attempts = 2),
		count(*) FILTER (WHERE status = 'failed' AND attempts = 3) FROM deliveries`).Scan(&delivered, &failed); err != nil {
		t.Fatal(err)
	}
	if delivered != 5 || failed != 5 {
		t.Fatalf("attempt counts wrong: %d delivered after 2 attempts, %d failed after 3", delivered, failed)
	}
}

func TestRestartMidStreamLosesNothing(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	s := start(t, cfg)

	rcv := newReceiver(t)
	subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")

	const batches, per = 40, 25
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < batches; i++ {
			insertEvents(t, db.DSN, per, "order.created", true)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitfor.True(t, "some deliveries before the restart", 10*time.Second, func() bool { return rcv.distinct() > 50 })
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s = start(t, cfg) // events committed while stopped are streamed on start
	defer s.Stop()
	<-done
	waitfor.True(t, "every committed event delivered", 30*time.Second, func() bool {
		n := countStatus(t, s.Store, store.StatusDelivered)
		if n != batches*per {
			var outbox, events int
			_ = s.Store.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM public.webhook_outbox), (SELECT count(*) FROM events)`).Scan(&outbox, &events)
			t.Logf("delivered %d, pending %d, outbox %d, events %d, receiver %d", n, countStatus(t, s.Store, store.StatusPending), outbox, events, rcv.distinct())
			time.Sleep(time.Second)
		}
		return n == batches*per
	})
	if got := rcv.distinct(); got != batches*per {
		t.Fatalf("receiver saw %d distinct deliveries, want %d", got, batches*per)
	}
	var dup int
	rcv.mu.Lock()
	for _, n := range rcv.byID {
		dup += n - 1
	}
	rcv.mu.Unlock()
	t.Logf("%d deliveries, %d re-sent with the same webhook-id", batches*per, dup)
}

func TestBadRowsAreDeadLetteredAndTheStreamMovesOn(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Outbox.MaxPayloadBytes = 100
	s := start(t, cfg)
	defer s.Stop()
	rcv := newReceiver(t)
	subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	pgtest.Exec(t, db.DSN, `INSERT INTO webhook_outbox (event_type, payload) VALUES ('', '{}')`)
	pgtest.Exec(t, db.DSN, `INSERT INTO webhook_outbox (event_type, payload) VALUES ('big', $1)`, `{"x":"`+strings.Repeat("a", 200)+`"}`)
	pgtest.Exec(t, db.DSN, `INSERT INTO webhook_outbox (event_type, payload) VALUES ('scalar', '"just a string"')`) // outbox.payload_kinds: objects, arrays
	// It would go into a header: a line break could add headers or end the request.
	pgtest.Exec(t, db.DSN, `INSERT INTO webhook_outbox (event_type, payload) VALUES (E'order.x\r\nX-Injected: yes', '{}')`)
	// The table changes under the stream: the new Relation message must be used.
	pgtest.Exec(t, db.DSN, `ALTER TABLE webhook_outbox ADD COLUMN extra text`)
	pgtest.Exec(t, db.DSN, `INSERT INTO webhook_outbox (event_type, payload, extra) VALUES ('order.created', '{"ok":true}', 'x')`)
	waitfor.True(t, "the good row delivered after the bad ones", 20*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 1
	})
	rows, err := s.Store.Pool().Query(context.Background(), `SELECT reason FROM dead_letters ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	reasons, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(reasons) != 4 || !strings.Contains(reasons[0], "event type") || !strings.Contains(reasons[1], "max_payload_bytes") ||
		!strings.Contains(reasons[2], "payload is a JSON string") || !strings.Contains(reasons[3], "control characters") {
		t.Fatalf("dead letters = %q", reasons)
	}
	for reason, want := range map[string]float64{metrics.DeadEmptyType: 1, metrics.DeadTooLarge: 1, metrics.DeadPayloadKind: 1, metrics.DeadOther: 1} {
		if got := counterValue(t, s, "walhook_dead_letters_total", "reason", reason); got != want {
			t.Errorf("walhook_dead_letters_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

func TestATextPayloadColumnIsCheckedForJSON(t *testing.T) {
	// A json or jsonb column is valid JSON by Postgres' own check, so walhook
	// skips its own; a text column is not, and must be checked.
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	s := start(t, cfg)
	defer s.Stop()
	rcv := newReceiver(t)
	subscribe(t, cfg, s, rcv, rcv.srv.URL, "*")
	pgtest.Exec(t, db.DSN, `ALTER TABLE webhook_outbox ALTER COLUMN payload TYPE text`)
	pgtest.Exec(t, db.DSN, `INSERT INTO webhook_outbox (event_type, payload) VALUES ('order.created', '{"unclosed": ')`)
	pgtest.Exec(t, db.DSN, `INSERT INTO webhook_outbox (event_type, payload) VALUES ('order.created', '{"ok":true}')`)
	waitfor.True(t, "the valid row delivered", 20*time.Second, func() bool {
		return countStatus(t, s.Store, store.StatusDelivered) == 1
	})
	var reason string
	if err := s.Store.Pool().QueryRow(context.Background(), `SELECT reason FROM dead_letters`).Scan(&reason); err != nil || !strings.Contains(reason, "not valid JSON") {
		t.Fatalf("dead letter %q (%v), want the invalid JSON one", reason, err)
	}
	if got := counterValue(t, s, "walhook_dead_letters_total", "reason", metrics.DeadInvalidJSON); got != 1 {
		t.Fatalf("walhook_dead_letters_total{reason=%q} = %v, want 1", metrics.DeadInvalidJSON, got)
	}
}

// counterValue reads one labelled counter from walhook's registry.
func counterValue(t *testing.T, s *app.Server, name, label, value string) float64 {
	t.Helper()
	families, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
