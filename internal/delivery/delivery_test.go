package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/metrics"
	"github.com/walhook/walhook/internal/netguard"
	"github.com/walhook/walhook/internal/retry"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/waitfor"
)

// sink records what the dispatcher decides, with the time of each call.
type sink struct {
	mu      sync.Mutex
	results []delivery.Result
	resAt   []time.Time
	parks   [][2]string
	health  []store.EndpointHealth
}

func (s *sink) Result(r delivery.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results = append(s.results, r)
	s.resAt = append(s.resAt, time.Now())
}

func (s *sink) Park(endpointID, deliveryID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parks = append(s.parks, [2]string{endpointID, deliveryID})
}

func (s *sink) Health(h store.EndpointHealth) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health = append(s.health, h)
}

func (s *sink) resultCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.results)
}

// result returns the last result recorded for a delivery.
func (s *sink) result(id string) (delivery.Result, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.results) - 1; i >= 0; i-- {
		if s.results[i].Delivery.ID == id {
			return s.results[i], s.resAt[i], true
		}
	}
	return delivery.Result{}, time.Time{}, false
}

func (s *sink) resultsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.results {
		if r.Delivery.ID == id {
			n++
		}
	}
	return n
}

func (s *sink) parked() [][2]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][2]string(nil), s.parks...)
}

func (s *sink) healthOf(endpointID string) []store.EndpointHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.EndpointHealth
	for _, h := range s.health {
		if h.EndpointID == endpointID {
			out = append(out, h)
		}
	}
	return out
}

type resumeCall struct {
	endpointID string
	n          int
	at         time.Time
}

// resumer records Resume calls; the test plays the scheduler's part,
// including how many deliveries it holds parked.
type resumer struct {
	mu     sync.Mutex
	calls  []resumeCall
	parked atomic.Int64
}

func (r *resumer) Parked() int { return int(r.parked.Load()) }

func (r *resumer) Resume(endpointID string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, resumeCall{endpointID, n, time.Now()})
}

func (r *resumer) of(endpointID string) []resumeCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []resumeCall
	for _, c := range r.calls {
		if c.endpointID == endpointID {
			out = append(out, c)
		}
	}
	return out
}

type bundle struct {
	d    *delivery.Dispatcher
	sink *sink
	res  *resumer
	m    *metrics.Metrics
}

var defaultSchedule = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute}

// setup makes a dispatcher with test defaults (loopback allowed, breaker
// off) that mutate may change; it is stopped when the test ends.
func setup(t *testing.T, mutate func(*delivery.Options)) *bundle {
	t.Helper()
	b := &bundle{sink: &sink{}, res: &resumer{}, m: metrics.Discard()}
	opts := delivery.Options{
		Workers:          16,
		EndpointInflight: 4,
		Timeout:          5 * time.Second,
		BodyLimit:        1000,
		UserAgent:        "walhook-test/1",
		Policy:           retry.Policy{Schedule: defaultSchedule, MaxAttempts: 5},
		Resumer:          b.res,
		Network:          netguard.Policy{AllowPrivate: true},
		Metrics:          b.m,
	}
	if mutate != nil {
		mutate(&opts)
	}
	b.d = delivery.New(opts, b.sink)
	t.Cleanup(func() { b.d.Stop(time.Second) })
	return b
}

// attempts is the walhook_attempts_total count of a result class.
func (b *bundle) attempts(class string) float64 {
	var pb dto.Metric
	if err := b.m.Attempts.WithLabelValues(class).Write(&pb); err != nil {
		panic(err)
	}
	return pb.GetCounter().GetValue()
}

func newEndpoint(t *testing.T, id, url string, mutate ...func(*store.Endpoint)) *route.Endpoint {
	t.Helper()
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	e := &store.Endpoint{ID: id, URL: url, Secret: secret, Active: true, RetryClientErrors: true,
		EventTypes: []string{"*"}, Headers: map[string]string{}}
	for _, m := range mutate {
		m(e)
	}
	re, err := route.Compile(e)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

var eventTime = time.Date(2026, 11, 24, 4, 18, 13, 123456789, time.UTC)

func newJob(ep *route.Endpoint, id string) *delivery.Job {
	return &delivery.Job{DeliveryID: id, Endpoint: ep, EventID: "evt_" + id, EventType: "order.created",
		EventTime: eventTime, Payload: []byte(`{"id":42}`), Attempt: 1, MaxAttempts: 5}
}

// waitResult waits for a delivery's result.
func (b *bundle) waitResult(t *testing.T, id string) delivery.Result {
	t.Helper()
	var r delivery.Result
	waitfor.True(t, "the result of "+id, 10*time.Second, func() bool {
		var ok bool
		r, _, ok = b.sink.result(id)
		return ok
	})
	return r
}

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

// heldServer answers each request only when the test lets it go (next or
// open), so tests see exactly which requests are under way.
type heldServer struct {
	*httptest.Server
	release  chan struct{}
	openOnce sync.Once
	status   func(r *http.Request) int

	mu    sync.Mutex
	cur   int
	max   int
	curBy map[string]int
	maxBy map[string]int
	hits  map[string]int // by webhook-id
	total int
}

func newHeldServer(t *testing.T) *heldServer {
	t.Helper()
	h := &heldServer{release: make(chan struct{}), curBy: map[string]int{}, maxBy: map[string]int{}, hits: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	t.Cleanup(h.open) // runs first: no handler is left waiting when the server closes
	return h
}

func (h *heldServer) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body) // so r.Context ends when the client gives up
	lane := r.URL.Path
	h.mu.Lock()
	h.cur++
	h.max = max(h.max, h.cur)
	h.curBy[lane]++
	h.maxBy[lane] = max(h.maxBy[lane], h.curBy[lane])
	h.hits[r.Header.Get("Webhook-Id")]++
	h.total++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.cur--
		h.curBy[lane]--
		h.mu.Unlock()
	}()
	select {
	case <-h.release:
	case <-r.Context().Done():
		return
	}
	code := http.StatusOK
	if h.status != nil {
		code = h.status(r)
	}
	w.WriteHeader(code)
}

// next lets one waiting request be answered.
func (h *heldServer) next() { h.release <- struct{}{} }

// open lets every request, now and later, be answered.
func (h *heldServer) open() { h.openOnce.Do(func() { close(h.release) }) }

func (h *heldServer) inFlight() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

func (h *heldServer) hitsOf(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[id]
}

func (h *heldServer) requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

func TestEnvelope(t *testing.T) {
	tests := []struct {
		name      string
		eventType string
		at        time.Time
		payload   string
		want      string // exact body; empty: only checked structurally
	}{
		{
			name:      "object payload, microsecond UTC timestamp",
			eventType: "order.created", at: eventTime, payload: `{"id":42}`,
			want: `{"type":"order.created","timestamp":"2026-11-24T04:18:13.123456Z","data":{"id":42}}`,
		},
		{
			name:      "a time in another zone is written in UTC",
			eventType: "order.created", at: eventTime.In(time.FixedZone("CET", 3600)), payload: `{}`,
			want: `{"type":"order.created","timestamp":"2026-11-24T04:18:13.123456Z","data":{}}`,
		},
		{
			name:      "whole seconds keep six fractional digits",
			eventType: "x", at: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), payload: `[]`,
			want: `{"type":"x","timestamp":"2026-01-02T03:04:05.000000Z","data":[]}`,
		},
		{
			name:      "payload bytes are forwarded unparsed",
			eventType: "order.paid", at: eventTime, payload: "{ \"b\" : 2.50,\n  \"a\":[1e3, \"\\u00e9\"], \"b\":3 }",
			want: "{\"type\":\"order.paid\",\"timestamp\":\"2026-11-24T04:18:13.123456Z\",\"data\":{ \"b\" : 2.50,\n  \"a\":[1e3, \"\\u00e9\"], \"b\":3 }}",
		},
		{
			name:      "years before 1000 keep four digits",
			eventType: "x", at: time.Date(999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), payload: `1`,
			want: `{"type":"x","timestamp":"0999-12-31T23:59:59.999999Z","data":1}`,
		},
		{
			name:      "event type is escaped as a JSON string",
			eventType: "we\"ird\\<type>\u2028", at: eventTime, payload: `null`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := delivery.Envelope(tt.eventType, tt.at, []byte(tt.payload))
			if tt.want != "" && string(got) != tt.want {
				t.Fatalf("Envelope =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("Envelope is not valid JSON: %s", got)
			}
			var env struct {
				Type      string          `json:"type"`
				Timestamp time.Time       `json:"timestamp"`
				Data      json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(got, &env); err != nil {
				t.Fatal(err)
			}
			if env.Type != tt.eventType || !env.Timestamp.Equal(tt.at.Truncate(time.Microsecond)) || string(env.Data) != tt.payload {
				t.Fatalf("decoded envelope = %q %v %s; want %q %v %s", env.Type, env.Timestamp, env.Data, tt.eventType, tt.at, tt.payload)
			}
		})
	}
}

func TestRequestIsSignedAndCarriesTheEnvelope(t *testing.T) {
	type captured struct {
		header http.Header
		body   []byte
		method string
		query  string
	}
	got := make(chan captured, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- captured{r.Header.Clone(), body, r.Method, r.URL.RawQuery}
		fmt.Fprint(w, "thanks")
	}))
	defer srv.Close()

	b := setup(t, nil)
	previous, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	ep := newEndpoint(t, "ep_sign", srv.URL+"/hook?k=v", func(e *store.Endpoint) {
		e.PreviousSecret, e.PreviousSecretExpiresAt = previous, time.Now().Add(time.Hour)
		e.Headers = map[string]string{
			"X-Custom":     "custom value",
			"Content-Type": "text/plain", // walhook's own headers win
			"Webhook-Id":   "forged",
		}
	})
	payload := []byte("{\"amount\": 10.50,  \"tags\":[\"a\",\"b\"] }")
	j := newJob(ep, "msg_sign1")
	j.Payload, j.EventType = payload, "payment.captured"
	before := time.Now()
	b.d.Submit(j)
	var req captured
	select {
	case req = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the endpoint")
	}

	wantBody := delivery.Envelope("payment.captured", eventTime, payload)
	if !bytes.Equal(req.body, wantBody) {
		t.Fatalf("body =\n%s\nwant\n%s", req.body, wantBody)
	}
	if !bytes.Contains(req.body, []byte(`"data":`+string(payload)+`}`)) {
		t.Fatalf("payload bytes were not forwarded as they are: %s", req.body)
	}
	if req.method != http.MethodPost || req.query != "k=v" {
		t.Fatalf("request %s ?%s; want POST with the endpoint's query", req.method, req.query)
	}
	h := req.header
	for name, want := range map[string]string{
		"Content-Type":       "application/json",
		"User-Agent":         "walhook-test/1",
		"X-Webhook-Event":    "payment.captured",
		"Webhook-Id":         "msg_sign1",
		"X-Webhook-Delivery": "msg_sign1",
		"X-Custom":           "custom value",
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	ts, err := strconv.ParseInt(h.Get("Webhook-Timestamp"), 10, 64)
	if err != nil || ts < before.Unix()-1 || ts > time.Now().Unix()+1 {
		t.Errorf("webhook-timestamp %q is not the attempt's time", h.Get("Webhook-Timestamp"))
	}
	if h.Get("X-Webhook-Timestamp") != h.Get("Webhook-Timestamp") {
		t.Errorf("legacy timestamp %q differs from %q", h.Get("X-Webhook-Timestamp"), h.Get("Webhook-Timestamp"))
	}
	now := time.Now()
	for _, secret := range []string{ep.Secret, previous} {
		if err := signature.Verify(secret, h, req.body, now, signature.DefaultTolerance); err != nil {
			t.Errorf("Verify with a secret in rotation: %v", err)
		}
	}
	if err := signature.VerifyLegacy(ep.Secret, h, req.body, now, signature.DefaultTolerance); err != nil {
		t.Errorf("VerifyLegacy: %v", err)
	}
	other, _ := signature.NewSecret()
	if err := signature.Verify(other, h, req.body, now, signature.DefaultTolerance); !errors.Is(err, signature.ErrNoMatchingSignature) {
		t.Errorf("Verify with a foreign secret = %v, want ErrNoMatchingSignature", err)
	}
	tampered := bytes.Replace(req.body, []byte("10.50"), []byte("99.50"), 1)
	if err := signature.VerifyLegacy(ep.Secret, h, tampered, now, signature.DefaultTolerance); err == nil {
		t.Error("VerifyLegacy accepted a tampered body")
	}

	res := b.waitResult(t, "msg_sign1")
	d, a := res.Delivery, res.Attempt
	if d.Status != store.StatusDelivered || d.Attempts != 1 || d.LastStatusCode != 200 || d.LastResponse != "thanks" || d.DeliveredAt.IsZero() ||
		!d.NextRetryAt.IsZero() || d.EndpointID != "ep_sign" || d.EventID != "evt_msg_sign1" || d.EventType != "payment.captured" {
		t.Errorf("delivery = %+v", d)
	}
	if a.DeliveryID != "msg_sign1" || a.Attempt != 1 || a.EndpointID != "ep_sign" || a.StatusCode != 200 || a.Response != "thanks" ||
		a.Error != "" || a.StartedAt.Before(before) || a.Duration < 0 {
		t.Errorf("attempt = %+v", a)
	}
	if n := b.attempts(metrics.Class2xx); n != 1 {
		t.Errorf("2xx attempts counted %v, want 1", n)
	}
}

func TestResponseSnippetIsCutToBodyLimitCharacters(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"shorter body is kept whole", "ok", "ok"},
		{"ASCII is cut", "abcdefghij", "abcde"},
		{"two-byte characters count once", strings.Repeat("é", 8), "ééééé"},
		{"four-byte characters count once", strings.Repeat("😀", 8), "😀😀😀😀😀"},
		{"a character cut by the byte budget is not kept", "a" + strings.Repeat("😀", 8), "a😀😀😀😀"},
		{"invalid UTF-8 is replaced, never kept", "ab\xff\xfecdef", "ab\uFFFDcd"},
		{"a huge body keeps only the start", strings.Repeat("ж", 200_000), "жжжжж"},
	}
	bodies := map[string]string{}
	for i, tt := range tests {
		bodies["/"+strconv.Itoa(i)] = tt.body
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, bodies[r.URL.Path])
	}))
	defer srv.Close()
	b := setup(t, func(o *delivery.Options) { o.BodyLimit = 5 })
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "msg_body" + strconv.Itoa(i)
			b.d.Submit(newJob(newEndpoint(t, "ep_body"+strconv.Itoa(i), srv.URL+"/"+strconv.Itoa(i)), id))
			res := b.waitResult(t, id)
			if res.Attempt.Response != tt.want || res.Delivery.LastResponse != tt.want {
				t.Fatalf("response kept %q (delivery %q), want %q", res.Attempt.Response, res.Delivery.LastResponse, tt.want)
			}
			if !utf8.ValidString(res.Attempt.Response) {
				t.Fatalf("response %q is not valid UTF-8", res.Attempt.Response)
			}
		})
	}
}

func TestRetryAfterIsHonouredAndCapped(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		code       int
		retryAfter string
		want       time.Duration // after the attempt
	}{
		{"429 with seconds", 429, "120", 2 * time.Minute},
		{"503 with seconds", 503, "90", 90 * time.Second},
		{"shorter than the schedule is honoured", 429, "5", 5 * time.Second},
		{"503 with an HTTP date", 503, now.Add(3 * time.Minute).Format(http.TimeFormat), 3 * time.Minute},
		{"seconds capped at the longest delay", 429, "86400", 10 * time.Minute},
		{"HTTP date capped at the longest delay", 503, now.Add(48 * time.Hour).Format(http.TimeFormat), 10 * time.Minute},
		{"ignored on 500", 500, "120", time.Minute},
		{"ignored on 502", 502, "5", time.Minute},
		{"absent: the schedule", 429, "", time.Minute},
		{"unparseable: the schedule", 429, "soon", time.Minute},
		{"zero: the schedule", 503, "0", time.Minute},
		{"negative: the schedule", 503, "-30", time.Minute},
		{"date in the past: the schedule", 503, now.Add(-time.Hour).Format(http.TimeFormat), time.Minute},
	}
	answers := map[string][2]string{}
	for i, tt := range tests {
		answers["/"+strconv.Itoa(i)] = [2]string{strconv.Itoa(tt.code), tt.retryAfter}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.URL.Path]
		if a[1] != "" {
			w.Header().Set("Retry-After", a[1])
		}
		code, _ := strconv.Atoi(a[0])
		w.WriteHeader(code)
	}))
	defer srv.Close()
	b := setup(t, func(o *delivery.Options) {
		o.Now = fixedClock(now)
		o.Policy = retry.Policy{Schedule: []time.Duration{time.Minute, 10 * time.Minute, 2 * time.Minute}, MaxAttempts: 5}
	})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "msg_ra" + strconv.Itoa(i)
			b.d.Submit(newJob(newEndpoint(t, "ep_ra"+strconv.Itoa(i), srv.URL+"/"+strconv.Itoa(i)), id))
			d := b.waitResult(t, id).Delivery
			if d.Status != store.StatusRetrying || d.LastStatusCode != tt.code {
				t.Fatalf("delivery %s with code %d, want retrying with %d", d.Status, d.LastStatusCode, tt.code)
			}
			if got := d.NextRetryAt.Sub(now); got != tt.want {
				t.Fatalf("next attempt in %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStatusCodesDecideTheOutcome(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		code         int
		clientErrors bool
		attempt, max int
		schedule     []time.Duration // the endpoint's own schedule
		want         store.Status
		wantNext     time.Duration
		wantClass    string
		wantDisable  bool
	}{
		{name: "200 is delivered", code: 200, clientErrors: true, attempt: 1, max: 5, want: store.StatusDelivered, wantClass: metrics.Class2xx},
		{name: "204 is delivered", code: 204, clientErrors: true, attempt: 3, max: 5, want: store.StatusDelivered, wantClass: metrics.Class2xx},
		{name: "302 is not followed and is retried", code: 302, clientErrors: true, attempt: 1, max: 5, want: store.StatusRetrying, wantNext: time.Minute, wantClass: metrics.Class3xx},
		{name: "307 is not followed and is retried", code: 307, clientErrors: false, attempt: 1, max: 5, want: store.StatusRetrying, wantNext: time.Minute, wantClass: metrics.Class3xx},
		{name: "400 retried when 4xx are retried", code: 400, clientErrors: true, attempt: 1, max: 5, want: store.StatusRetrying, wantNext: time.Minute, wantClass: metrics.Class4xx},
		{name: "400 fails when 4xx are not retried", code: 400, clientErrors: false, attempt: 1, max: 5, want: store.StatusFailed, wantClass: metrics.Class4xx},
		{name: "401 fails when 4xx are not retried", code: 401, clientErrors: false, attempt: 2, max: 5, want: store.StatusFailed, wantClass: metrics.Class4xx},
		{name: "404 fails when 4xx are not retried", code: 404, clientErrors: false, attempt: 1, max: 5, want: store.StatusFailed, wantClass: metrics.Class4xx},
		{name: "408 is always retried", code: 408, clientErrors: false, attempt: 1, max: 5, want: store.StatusRetrying, wantNext: time.Minute, wantClass: metrics.Class4xx},
		{name: "409 is always retried", code: 409, clientErrors: false, attempt: 1, max: 5, want: store.StatusRetrying, wantNext: time.Minute, wantClass: metrics.Class4xx},
		{name: "425 is always retried", code: 425, clientErrors: false, attempt: 1, max: 5, want: store.StatusRetrying, wantNext: time.Minute, wantClass: metrics.Class4xx},
		{name: "429 is always retried", code: 429, clientErrors: false, attempt: 1, max: 5, want: store.StatusRetrying, wantNext: time.Minute, wantClass: metrics.Class4xx},
		{name: "410 fails and disables the endpoint", code: 410, clientErrors: true, attempt: 1, max: 5, want: store.StatusFailed, wantClass: metrics.Class4xx, wantDisable: true},
		{name: "500 on the second attempt waits the second delay", code: 500, clientErrors: true, attempt: 2, max: 5, want: store.StatusRetrying, wantNext: 5 * time.Minute, wantClass: metrics.Class5xx},
		{name: "beyond the schedule the last delay repeats", code: 503, clientErrors: true, attempt: 4, max: 10, want: store.StatusRetrying, wantNext: 30 * time.Minute, wantClass: metrics.Class5xx},
		{name: "the last attempt fails", code: 500, clientErrors: true, attempt: 5, max: 5, want: store.StatusFailed, wantClass: metrics.Class5xx},
		{name: "a job's max attempts overrides the default", code: 500, clientErrors: true, attempt: 2, max: 2, want: store.StatusFailed, wantClass: metrics.Class5xx},
		{name: "the endpoint's schedule overrides the default", code: 500, clientErrors: true, attempt: 1, max: 5, schedule: []time.Duration{7 * time.Second}, want: store.StatusRetrying, wantNext: 7 * time.Second, wantClass: metrics.Class5xx},
	}
	var mu sync.Mutex
	redirected := 0
	mux := http.NewServeMux()
	mux.HandleFunc("/redirected", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		redirected++
		mu.Unlock()
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/redirected")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", code)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b := setup(t, func(o *delivery.Options) {
		o.Now = fixedClock(now)
		o.Policy = retry.Policy{Schedule: defaultSchedule, MaxAttempts: 5}
	})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epID := "ep_status" + strconv.Itoa(i)
			ep := newEndpoint(t, epID, srv.URL+"/status/"+strconv.Itoa(tt.code), func(e *store.Endpoint) {
				e.RetryClientErrors, e.RetrySchedule = tt.clientErrors, tt.schedule
			})
			j := newJob(ep, "msg_status"+strconv.Itoa(i))
			j.Attempt, j.MaxAttempts = tt.attempt, tt.max
			classBefore := b.attempts(tt.wantClass)
			b.d.Submit(j)
			res := b.waitResult(t, j.DeliveryID)
			d, a := res.Delivery, res.Attempt
			if d.Status != tt.want {
				t.Fatalf("status %s, want %s", d.Status, tt.want)
			}
			if d.Attempts != tt.attempt || a.Attempt != tt.attempt || d.MaxAttempts != tt.max {
				t.Errorf("attempts %d (attempt row %d, max %d), want %d of %d", d.Attempts, a.Attempt, d.MaxAttempts, tt.attempt, tt.max)
			}
			wantResponse := fmt.Sprintf("answer %d", tt.code)
			if tt.code == http.StatusNoContent {
				wantResponse = "" // no body allowed
			}
			if d.LastStatusCode != tt.code || a.StatusCode != tt.code || a.Response != wantResponse || d.LastResponse != wantResponse {
				t.Errorf("kept code %d / %d, response %q", d.LastStatusCode, a.StatusCode, a.Response)
			}
			var next time.Duration
			if !d.NextRetryAt.IsZero() {
				next = d.NextRetryAt.Sub(now)
			}
			if next != tt.wantNext {
				t.Errorf("next attempt in %s, want %s", next, tt.wantNext)
			}
			if delivered := !d.DeliveredAt.IsZero(); delivered != (tt.want == store.StatusDelivered) {
				t.Errorf("delivered_at %v with status %s", d.DeliveredAt, d.Status)
			}
			if got := b.attempts(tt.wantClass) - classBefore; got != 1 {
				t.Errorf("attempts of class %s counted %v, want 1", tt.wantClass, got)
			}
			var disabled []string
			for _, h := range b.sink.healthOf(epID) {
				if h.Disable != "" {
					disabled = append(disabled, h.Disable)
				}
			}
			switch {
			case tt.wantDisable && (len(disabled) != 1 || !strings.Contains(disabled[0], "410")):
				t.Errorf("health disable reasons %q, want one naming the 410", disabled)
			case !tt.wantDisable && len(disabled) != 0:
				t.Errorf("endpoint disabled (%q) by a %d", disabled, tt.code)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if redirected != 0 {
		t.Fatalf("a redirect was followed %d times", redirected)
	}
}

func TestTransportFailuresAreRetriedWithoutTheURL(t *testing.T) {
	const secret = "s3cr3t-query-token"
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Once the body is read the server watches the connection, so the
		// request's context ends when the client gives up.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer hang.Close()
	var liveHits sync.Map
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		liveHits.Store(r.Header.Get("Webhook-Id"), true)
	}))
	defer live.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		wantErr      string
		wantClass    string
	}{
		{"timeout", hang.URL + "/hook?token=" + secret, true, "timeout after 300ms", metrics.ClassTimeout},
		{"connection refused", "http://" + closedAddr + "/hook?token=" + secret, true, "refused", metrics.ClassConnError},
		{"loopback refused by the network policy", live.URL + "/hook?token=" + secret, false, "loopback", metrics.ClassBlocked},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, func(o *delivery.Options) {
				o.Timeout = 300 * time.Millisecond
				o.Network = netguard.Policy{AllowPrivate: tt.allowPrivate}
			})
			id := "msg_transport" + strconv.Itoa(i)
			start := time.Now()
			b.d.Submit(newJob(newEndpoint(t, "ep_transport", tt.url), id))
			res := b.waitResult(t, id)
			d, a := res.Delivery, res.Attempt
			if d.Status != store.StatusRetrying || d.NextRetryAt.Sub(start) < 50*time.Second || d.Attempts != 1 || a.Attempt != 1 {
				t.Errorf("delivery %s after %d attempts, next %v; want retrying in about a minute", d.Status, d.Attempts, d.NextRetryAt.Sub(start))
			}
			if d.LastStatusCode != 0 || a.StatusCode != 0 || a.Error != d.LastError {
				t.Errorf("code %d/%d, errors %q / %q", d.LastStatusCode, a.StatusCode, a.Error, d.LastError)
			}
			if !strings.Contains(a.Error, tt.wantErr) {
				t.Errorf("error %q does not say %q", a.Error, tt.wantErr)
			}
			for _, leak := range []string{secret, "token=", "/hook"} {
				if strings.Contains(a.Error, leak) {
					t.Errorf("error %q carries the URL (%q)", a.Error, leak)
				}
			}
			if got := b.attempts(tt.wantClass); got != 1 {
				t.Errorf("attempts of class %s counted %v, want 1", tt.wantClass, got)
			}
			if _, hit := liveHits.Load(id); hit {
				t.Error("the request reached a destination the policy refuses")
			}
		})
	}
}

func TestConcurrencyCaps(t *testing.T) {
	tests := []struct {
		name            string
		workers         int
		inflight        int
		endpoints, jobs int // jobs per endpoint
		wantConcurrent  int
		wantQueued      int // jobs not yet taken from their lanes at the cap
	}{
		{"endpoint in-flight cap", 16, 3, 1, 10, 3, 7},
		{"global worker cap across endpoints", 3, 2, 3, 4, 3, 6},
		{"both caps, many endpoints", 5, 2, 4, 3, 5, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newHeldServer(t)
			b := setup(t, func(o *delivery.Options) { o.Workers, o.EndpointInflight = tt.workers, tt.inflight })
			var ids []string
			for e := 0; e < tt.endpoints; e++ {
				ep := newEndpoint(t, fmt.Sprintf("ep_cap%d", e), fmt.Sprintf("%s/lane%d", srv.URL, e))
				for j := 0; j < tt.jobs; j++ {
					id := fmt.Sprintf("msg_cap%d_%d", e, j)
					ids = append(ids, id)
					b.d.Submit(newJob(ep, id))
				}
			}
			waitfor.True(t, "the caps to be reached", 10*time.Second, func() bool {
				return srv.inFlight() == tt.wantConcurrent && b.d.Queued() == tt.wantQueued
			})
			srv.open()
			waitfor.True(t, "every job delivered", 10*time.Second, func() bool { return b.sink.resultCount() == len(ids) })
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if srv.max != tt.wantConcurrent {
				t.Errorf("at most %d requests under way at once, want %d", srv.max, tt.wantConcurrent)
			}
			for lane, m := range srv.maxBy {
				if m > tt.inflight {
					t.Errorf("endpoint %s had %d requests under way, cap %d", lane, m, tt.inflight)
				}
			}
			for _, id := range ids {
				if srv.hits[id] != 1 {
					t.Errorf("%s sent %d times", id, srv.hits[id])
				}
			}
		})
	}
}

func TestDuplicateSubmitIsDroppedWhileQueuedOrInFlight(t *testing.T) {
	srv := newHeldServer(t)
	b := setup(t, func(o *delivery.Options) { o.EndpointInflight = 1 })
	ep := newEndpoint(t, "ep_dup", srv.URL)

	b.d.Submit(newJob(ep, "msg_a"))
	waitfor.True(t, "msg_a under way", 10*time.Second, func() bool { return srv.hitsOf("msg_a") == 1 })
	b.d.Submit(newJob(ep, "msg_a")) // in flight
	if q := b.d.Queued(); q != 0 {
		t.Fatalf("a duplicate of a delivery under way was queued (%d queued)", q)
	}
	b.d.Submit(newJob(ep, "msg_b"))
	b.d.Submit(newJob(ep, "msg_b")) // queued
	retried := newJob(ep, "msg_b")
	retried.Attempt = 2
	b.d.Submit(retried) // same delivery, whatever the attempt
	if q := b.d.Queued(); q != 1 {
		t.Fatalf("%d jobs queued, want msg_b once", q)
	}
	srv.open()
	waitfor.True(t, "both delivered", 10*time.Second, func() bool { return b.sink.resultCount() == 2 })
	if a, bb := srv.hitsOf("msg_a"), srv.hitsOf("msg_b"); a != 1 || bb != 1 {
		t.Fatalf("requests: msg_a %d, msg_b %d; want one each", a, bb)
	}
	if p := b.sink.parked(); len(p) != 0 {
		t.Fatalf("duplicates were parked: %v", p)
	}

	// Once finished, the same delivery may be submitted again (a manual re-send).
	b.d.Submit(newJob(ep, "msg_a"))
	waitfor.True(t, "msg_a sent again", 10*time.Second, func() bool { return b.sink.resultsOf("msg_a") == 2 })
	if n := srv.hitsOf("msg_a"); n != 2 {
		t.Fatalf("msg_a sent %d times, want 2", n)
	}
}

func TestFullQueueParksAndResumesWhenHalfDrained(t *testing.T) {
	srv := newHeldServer(t)
	b := setup(t, func(o *delivery.Options) { o.EndpointInflight, o.QueueLimit = 1, 4 })
	ep := newEndpoint(t, "ep_full", srv.URL)

	b.d.Submit(newJob(ep, "msg_q0"))
	waitfor.True(t, "msg_q0 under way", 10*time.Second, func() bool { return srv.hitsOf("msg_q0") == 1 })
	for i := 1; i <= 4; i++ {
		b.d.Submit(newJob(ep, fmt.Sprintf("msg_q%d", i)))
	}
	if q, acc := b.d.Queued(), b.d.Accepting("ep_full"); q != 4 || acc {
		t.Fatalf("queued %d, accepting %v; want a full queue of 4, not accepting parked ones", q, acc)
	}
	b.d.Submit(newJob(ep, "msg_q5"))
	b.d.Submit(newJob(ep, "msg_q6"))
	want := [][2]string{{"ep_full", "msg_q5"}, {"ep_full", "msg_q6"}}
	if p := b.sink.parked(); fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("parked %v, want %v", p, want)
	}
	b.res.parked.Store(2) // the scheduler holds them now

	srv.next() // q0 answered; q1 taken: 3 left, more than half
	waitfor.True(t, "msg_q1 under way", 10*time.Second, func() bool { return srv.hitsOf("msg_q1") == 1 })
	if r := b.res.of("ep_full"); len(r) != 0 || b.d.Accepting("ep_full") {
		t.Fatalf("resumed %v with 3 of 4 queued; want no resume before the lane is half empty", r)
	}
	srv.next() // q2 taken: 2 left, half
	waitfor.True(t, "the parked deliveries resumed", 10*time.Second, func() bool { return len(b.res.of("ep_full")) == 1 })
	if r := b.res.of("ep_full")[0]; r.n != 2 {
		t.Fatalf("Resume(%q, %d), want the room left in the lane (2)", r.endpointID, r.n)
	}
	if !b.d.Accepting("ep_full") {
		t.Fatal("not accepting after resuming")
	}
	srv.open()
	b.d.Submit(newJob(ep, "msg_q5")) // as the scheduler would
	b.d.Submit(newJob(ep, "msg_q6"))
	waitfor.True(t, "all 7 delivered", 10*time.Second, func() bool { return b.sink.resultCount() == 7 })
	for i := 0; i <= 6; i++ {
		if n := srv.hitsOf(fmt.Sprintf("msg_q%d", i)); n != 1 {
			t.Errorf("msg_q%d sent %d times", i, n)
		}
	}
}

func TestStopRecordsHangingAttemptsAsInterrupted(t *testing.T) {
	srv := newHeldServer(t)
	b := setup(t, func(o *delivery.Options) { o.EndpointInflight = 2; o.Timeout = time.Minute })
	ep := newEndpoint(t, "ep_stop", srv.URL)
	hung1, hung2, queued := newJob(ep, "msg_h1"), newJob(ep, "msg_h2"), newJob(ep, "msg_h3")
	hung1.Attempt = 3
	for _, j := range []*delivery.Job{hung1, hung2, queued} {
		b.d.Submit(j)
	}
	waitfor.True(t, "two attempts hanging", 10*time.Second, func() bool { return srv.inFlight() == 2 })

	const timeout = 300 * time.Millisecond
	start := time.Now()
	b.d.Stop(timeout)
	elapsed := time.Since(start)
	if elapsed < timeout-50*time.Millisecond || elapsed > timeout+3*time.Second {
		t.Fatalf("Stop(%s) returned after %s", timeout, elapsed)
	}
	stopped := time.Now()
	if n := b.sink.resultCount(); n != 2 {
		t.Fatalf("%d results after Stop, want the 2 interrupted attempts", n)
	}
	for _, tt := range []struct {
		id           string
		wantAttempts int
	}{{"msg_h1", 2}, {"msg_h2", 0}} {
		res, _, _ := b.sink.result(tt.id)
		d := res.Delivery
		if d.Status != store.StatusRetrying || d.Attempts != tt.wantAttempts || !strings.Contains(d.LastError, "interrupted") ||
			d.NextRetryAt.IsZero() || d.NextRetryAt.After(stopped) || d.LastStatusCode != 0 {
			t.Errorf("%s: %+v; want retrying now, %d attempts counted, an \"interrupted\" error", tt.id, d, tt.wantAttempts)
		}
		if res.Attempt != (store.Attempt{}) {
			t.Errorf("%s: interrupted attempt recorded as %+v; want no attempt row", tt.id, res.Attempt)
		}
	}
	if _, _, ok := b.sink.result("msg_h3"); ok {
		t.Error("the queued job got a result; it should stay pending in the store")
	}
	if h := b.sink.healthOf("ep_stop"); len(h) != 0 {
		t.Errorf("interrupted attempts changed the endpoint's health: %+v", h)
	}
	for _, c := range []string{metrics.ClassTimeout, metrics.ClassConnError, metrics.Class2xx} {
		if n := b.attempts(c); n != 0 {
			t.Errorf("interrupted attempts counted as %s (%v)", c, n)
		}
	}

	queuedAtStop := b.d.Queued() // msg_h3, abandoned in its lane
	b.d.Submit(newJob(ep, "msg_after"))
	if b.sink.resultCount() != 2 || len(b.sink.parked()) != 0 || b.d.Queued() != queuedAtStop {
		t.Fatal("a job submitted after Stop was taken")
	}
	b.d.Stop(timeout) // twice is harmless
	if n := srv.requests(); n != 2 {
		t.Fatalf("%d requests reached the endpoint, want 2", n)
	}
}

func TestStopWaitsForAttemptsThatFinishInTime(t *testing.T) {
	srv := newHeldServer(t)
	b := setup(t, nil)
	ep := newEndpoint(t, "ep_stop_ok", srv.URL)
	b.d.Submit(newJob(ep, "msg_s1"))
	waitfor.True(t, "the attempt under way", 10*time.Second, func() bool { return srv.inFlight() == 1 })
	done := make(chan struct{})
	go func() { b.d.Stop(30 * time.Second); close(done) }()
	srv.next()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return once the attempt finished")
	}
	res, _, ok := b.sink.result("msg_s1")
	if !ok || res.Delivery.Status != store.StatusDelivered || res.Attempt.Attempt != 1 {
		t.Fatalf("result %+v (%v), want delivered with its attempt", res, ok)
	}
}

// A binary answer is kept as valid UTF-8; NUL bytes, which Postgres text
// refuses, are the store's to replace (it writes every text from outside).
func TestBinaryResponseSnippetIsValidUTF8(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("bin\xffary\x00"))
	}))
	defer srv.Close()
	b := setup(t, nil)
	b.d.Submit(newJob(newEndpoint(t, "ep_bin", srv.URL), "msg_bin"))
	res := b.waitResult(t, "msg_bin")
	if !utf8.ValidString(res.Attempt.Response) || res.Attempt.Response != "bin\uFFFDary\x00" || res.Delivery.LastResponse != res.Attempt.Response {
		t.Fatalf("response kept as %q; want the invalid byte replaced", res.Attempt.Response)
	}
}

func TestRateLimitSpacesAnEndpointsRequests(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	free := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer free.Close()
	b := setup(t, nil)
	limited := newEndpoint(t, "ep_rate", srv.URL, func(e *store.Endpoint) { e.RateLimit = 20 })
	unlimited := newEndpoint(t, "ep_free", free.URL)

	start := time.Now()
	for i := range 10 {
		b.d.Submit(newJob(limited, fmt.Sprintf("msg_r%d", i)))
		b.d.Submit(newJob(unlimited, fmt.Sprintf("msg_f%d", i)))
	}
	for i := range 10 {
		b.waitResult(t, fmt.Sprintf("msg_f%d", i))
	}
	if took := time.Since(start); took > 400*time.Millisecond {
		t.Errorf("the unlimited endpoint took %s: another endpoint's rate limit held it back", took)
	}
	for i := range 10 {
		b.waitResult(t, fmt.Sprintf("msg_r%d", i))
	}
	mu.Lock()
	defer mu.Unlock()
	// 20 per second: 10 requests start 9 intervals of 50 ms apart. Arrival
	// times at the server jitter (the first one also opens the connection),
	// so allow one interval; unlimited, they would arrive within a few ms.
	if span := times[len(times)-1].Sub(times[0]); len(times) != 10 || span < 8*50*time.Millisecond {
		t.Fatalf("%d requests over %s; rate_limit 20/s spaces 10 requests over about 450ms", len(times), span)
	}
}

func TestOfferHoldsTheStreamBackWhileTheLaneIsFullOfWork(t *testing.T) {
	t.Run("waits for room, then queues", func(t *testing.T) {
		srv := newHeldServer(t)
		b := setup(t, func(o *delivery.Options) {
			o.EndpointInflight, o.QueueLimit, o.SoftLimit, o.StreamWait = 1, 100, 8, time.Minute
		})
		ep := newEndpoint(t, "ep_offer", srv.URL)
		ctx := context.Background()
		offer := func(i int) {
			t.Helper()
			if err := b.d.Offer(ctx, newJob(ep, fmt.Sprintf("msg_o%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		offer(0)
		waitfor.True(t, "msg_o0 under way", 10*time.Second, func() bool { return srv.hitsOf("msg_o0") == 1 })
		for i := 1; i <= 8; i++ { // the soft limit: 8 queued
			offer(i)
		}
		done := make(chan error, 1)
		go func() { done <- b.d.Offer(ctx, newJob(ep, "msg_o9")) }()
		waitfor.True(t, "the offer waiting", 10*time.Second, func() bool { return b.d.WaitingOffers() == 1 })
		// Room for one or two does not wake the stream: it waits until
		// the lane is below three quarters of its soft limit (6).
		for i := 0; i < 2; i++ {
			srv.next()
			waitfor.True(t, "the next one under way", 10*time.Second, func() bool { return srv.requests() == i+2 })
		}
		select {
		case err := <-done:
			t.Fatalf("Offer returned (%v) with %d queued; want it waiting for the lane to drain below 6", err, b.d.Queued())
		case <-time.After(200 * time.Millisecond):
		}
		srv.next() // 5 queued now
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Offer still waiting with %d queued", b.d.Queued())
		}
		srv.open()
		waitfor.True(t, "all 10 delivered", 10*time.Second, func() bool { return b.sink.resultCount() == 10 })
		if p := b.sink.parked(); len(p) != 0 {
			t.Fatalf("parked %v; a lane making room parks nothing", p)
		}
	})
	t.Run("a lane that makes no room is overloaded and not waited for", func(t *testing.T) {
		srv := newHeldServer(t)
		b := setup(t, func(o *delivery.Options) {
			o.EndpointInflight, o.QueueLimit, o.SoftLimit, o.StreamWait = 1, 4, 2, 5*time.Second
		})
		ep := newEndpoint(t, "ep_slow", srv.URL)
		ctx := context.Background()
		start := time.Now()
		for i := range 8 {
			if err := b.d.Offer(ctx, newJob(ep, fmt.Sprintf("msg_s%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		// Its request hangs: the lane starts nothing, which is known after
		// a tenth of StreamWait (500ms), not the whole 5s. Then the lane
		// fills to its limit and the rest is parked.
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("8 offers took %s; a stuck lane must be given up on early", took)
		}
		if q, p := b.d.Queued(), len(b.sink.parked()); q+p < 7 || p == 0 {
			t.Fatalf("queued %d, parked %d; want the lane full and the rest parked", q, p)
		}
	})
	t.Run("ends with its context", func(t *testing.T) {
		srv := newHeldServer(t)
		b := setup(t, func(o *delivery.Options) {
			o.EndpointInflight, o.QueueLimit, o.SoftLimit, o.StreamWait = 1, 100, 1, time.Minute
		})
		ep := newEndpoint(t, "ep_ctx", srv.URL)
		for i := range 2 {
			if err := b.d.Offer(context.Background(), newJob(ep, fmt.Sprintf("msg_c%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		waitfor.True(t, "msg_c0 under way", 10*time.Second, func() bool { return srv.hitsOf("msg_c0") == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := b.d.Offer(ctx, newJob(ep, "msg_c2")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Offer = %v, want the context's error", err)
		}
	})
}
