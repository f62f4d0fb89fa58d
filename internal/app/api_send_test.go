package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/waitfor"
)

// capture records every request it gets and answers status (200 when 0).
type capture struct {
	mu     sync.Mutex
	reqs   []captured
	status int
	srv    *httptest.Server
}

type captured struct {
	header http.Header
	body   []byte
}

func newCapture(t *testing.T) *capture {
	c := &capture{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.reqs = append(c.reqs, captured{r.Header.Clone(), body})
		status := c.status
		c.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			fmt.Fprint(w, "nope")
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reqs)
}

// wait returns the n-th request (from 1), waiting for it.
func (c *capture) wait(t *testing.T, n int) captured {
	t.Helper()
	waitfor.True(t, fmt.Sprintf("request %d", n), 10*time.Second, func() bool { return c.count() >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reqs[n-1]
}

func (c *capture) setStatus(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = code
}

// signedBy reports which of the secrets the request verifies with
// (signature.Verify, the Standard Webhooks scheme).
func (r captured) signedBy(secrets ...string) []bool {
	out := make([]bool, len(secrets))
	for i, s := range secrets {
		err := signature.Verify(s, r.header, r.body, time.Now(), 0)
		if err != nil && !errors.Is(err, signature.ErrNoMatchingSignature) {
			panic(err) // malformed request: not what these tests check
		}
		out[i] = err == nil
	}
	return out
}

func (r captured) signatures() int { return len(strings.Fields(r.header.Get("webhook-signature"))) }

func TestAPIRotateSecretSignsWithBothUntilTheOverlapEnds(t *testing.T) {
	db := pgtest.New(t)
	cfg := tenantConfig(t, db.DSN)
	s, logs := startLogged(t, cfg)
	defer s.Stop()
	c := newAPIClient(t, s, token)
	rcv := newCapture(t)
	ep := c.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["order.*"]}`, rcv.srv.URL))
	first := ep.Secret
	newAPIClient(t, s, globexToken).hidden([3]string{"POST", "/endpoints/" + ep.ID + "/rotate-secret", `{"overlap":"0s"}`})

	insertEvents(t, db.DSN, 1, "order.created", true)
	if r := rcv.wait(t, 1); r.signatures() != 1 || !r.signedBy(first)[0] {
		t.Fatalf("before rotating: %d signatures, verifies %v", r.signatures(), r.signedBy(first))
	}

	var rotated endpointJSON
	raw := c.call("POST", "/endpoints/"+ep.ID+"/rotate-secret", `{"overlap":"3s"}`, http.StatusOK, &rotated)
	second := rotated.Secret
	if !strings.HasPrefix(second, "whsec_") || second == first || strings.Contains(string(raw), first) {
		t.Fatalf("rotate answered %s", raw)
	}
	if rotated.PreviousSecretExpiresAt == nil || time.Until(*rotated.PreviousSecretExpiresAt) > 3*time.Second {
		t.Fatalf("previous_secret_expires_at = %v, want within 3s", rotated.PreviousSecretExpiresAt)
	}
	got := c.call("GET", "/endpoints/"+ep.ID, "", http.StatusOK, nil)
	if strings.Contains(string(got), first) || strings.Contains(string(got), second) || !strings.Contains(string(got), "previous_secret_expires_at") {
		t.Fatalf("get after rotating: %s", got)
	}

	t.Run("during the overlap both secrets sign", func(t *testing.T) {
		insertEvents(t, db.DSN, 1, "order.created", true)
		r := rcv.wait(t, 2)
		if n, ok := r.signatures(), r.signedBy(first, second); n != 2 || !ok[0] || !ok[1] {
			t.Fatalf("%d signatures %q; verifies with old, new: %v", n, r.header.Get("webhook-signature"), ok)
		}
		if signature.VerifyLegacy(second, r.header, r.body, time.Now(), 0) != nil {
			t.Fatal("X-Webhook-Signature is not made with the new secret")
		}
		var res struct {
			Delivered bool `json:"delivered"`
		}
		if c.call("POST", "/endpoints/"+ep.ID+"/test", "", http.StatusOK, &res); !res.Delivered {
			t.Fatal("test event not delivered")
		}
		if ok := rcv.wait(t, 3).signedBy(first, second); !ok[0] || !ok[1] {
			t.Fatalf("the test event verifies with old, new: %v", ok)
		}
	})

	t.Run("after the overlap only the new secret signs", func(t *testing.T) {
		waitfor.True(t, "the previous secret to expire in the running walhook", 15*time.Second, func() bool {
			e, ok := s.Router.Table().Get(ep.ID)
			return ok && e.PreviousSecret == "" && e.Secret == second
		})
		insertEvents(t, db.DSN, 1, "order.created", true)
		r := rcv.wait(t, 4)
		if n, ok := r.signatures(), r.signedBy(first, second); n != 1 || ok[0] || !ok[1] {
			t.Fatalf("%d signatures; verifies with old, new: %v", n, ok)
		}
		var after endpointJSON
		if c.call("GET", "/endpoints/"+ep.ID, "", http.StatusOK, &after); after.PreviousSecretExpiresAt != nil {
			t.Fatalf("previous_secret_expires_at still %v", after.PreviousSecretExpiresAt)
		}
		if !strings.Contains(logs.String(), "previous secret of endpoint expired") {
			t.Error("the expiry was not logged")
		}
	})

	t.Run("an overlap of 0s retires the old secret at once", func(t *testing.T) {
		var now endpointJSON
		c.call("POST", "/endpoints/"+ep.ID+"/rotate-secret", `{"overlap":"0s"}`, http.StatusOK, &now)
		if now.PreviousSecretExpiresAt != nil {
			t.Fatalf("previous_secret_expires_at = %v after a 0s overlap", now.PreviousSecretExpiresAt)
		}
		insertEvents(t, db.DSN, 1, "order.created", true)
		r := rcv.wait(t, 5)
		if n, ok := r.signatures(), r.signedBy(second, now.Secret); n != 1 || ok[0] || !ok[1] {
			t.Fatalf("%d signatures; verifies with replaced, current: %v", n, ok)
		}
	})

	t.Run("bad rotations", func(t *testing.T) {
		tests := []struct {
			name, body, field string
			code              int
		}{
			{"not a duration", `{"overlap":"forever"}`, "overlap", 422},
			{"negative", `{"overlap":"-1s"}`, "overlap", 422},
			{"over 30 days", `{"overlap":"721h"}`, "overlap", 422},
			{"unknown field", `{"keep_old":true}`, "keep_old", 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { c.fails("POST", "/endpoints/"+ep.ID+"/rotate-secret", tt.body, tt.code, tt.field) })
		}
		c.fails("POST", "/endpoints/ep_doesnotexist/rotate-secret", "", 404, "")
	})
}

type testResultJSON struct {
	Delivered bool `json:"delivered"`
	Attempt   struct {
		Attempt    int     `json:"attempt"`
		DurationMS float64 `json:"duration_ms"`
		StatusCode *int    `json:"status_code"`
		Response   string  `json:"response"`
		Error      string  `json:"error"`
	} `json:"attempt"`
	Delivery deliveryJSON `json:"delivery"`
	Event    struct {
		ID        string `json:"id"`
		EventType string `json:"event_type"`
	} `json:"event"`
}

func TestAPITestEventReachesOnlyThatEndpointAndIsLogged(t *testing.T) {
	db := pgtest.New(t)
	cfg := tenantConfig(t, db.DSN)
	s := start(t, cfg)
	defer s.Stop()
	c := newAPIClient(t, s, token)
	rcv, bystander := newCapture(t), newCapture(t)
	ep := c.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["order.*"],"headers":{"X-Env":"test"}}`, rcv.srv.URL))
	c.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["*"]}`, bystander.srv.URL))
	testPath := "/endpoints/" + ep.ID + "/test"
	newAPIClient(t, s, globexToken).hidden([3]string{"POST", testPath, ""})
	if rcv.count() != 0 {
		t.Fatal("another tenant's test request reached the endpoint")
	}

	var res testResultJSON
	c.call("POST", testPath, "", http.StatusOK, &res)
	a := res.Attempt
	if !res.Delivered || a.StatusCode == nil || *a.StatusCode != 200 || a.Response != "ok" || a.DurationMS <= 0 || a.Attempt != 1 || a.Error != "" {
		t.Fatalf("test answered %+v", res)
	}
	r := rcv.wait(t, 1)
	var body struct {
		Type string `json:"type"`
		Data struct {
			EndpointID string `json:"endpoint_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Type != "webhook.test" || body.Data.EndpointID != ep.ID {
		t.Fatalf("test request body %s (%v)", r.body, err)
	}
	if !r.signedBy(ep.Secret)[0] || signature.VerifyLegacy(ep.Secret, r.header, r.body, time.Now(), 0) != nil ||
		r.header.Get("X-Webhook-Event") != "webhook.test" || r.header.Get("X-Env") != "test" || r.header.Get("webhook-id") != res.Delivery.ID {
		t.Fatalf("test request headers %v", r.header)
	}
	if n := bystander.count(); n != 0 {
		t.Fatalf("an endpoint subscribed to everything got %d requests", n)
	}

	t.Run("it is in the delivery log, with its event", func(t *testing.T) {
		var log pageJSON[deliveryJSON]
		c.call("GET", "/deliveries?endpoint_id="+ep.ID, "", http.StatusOK, &log)
		if len(log.Data) != 1 || log.Data[0].ID != res.Delivery.ID || log.Data[0].Status != "delivered" || log.Data[0].EventType != "webhook.test" {
			t.Fatalf("delivery log %+v", log.Data)
		}
		var d deliveryJSON
		c.call("GET", "/deliveries/"+res.Delivery.ID, "", http.StatusOK, &d)
		if len(d.AttemptLog) != 1 || d.AttemptLog[0].Response != "ok" {
			t.Fatalf("attempt log %+v", d.AttemptLog)
		}
		var ev struct {
			Payload    json.RawMessage `json:"payload"`
			Deliveries []deliveryJSON  `json:"deliveries"`
		}
		c.call("GET", "/events/"+res.Event.ID, "", http.StatusOK, &ev)
		if len(ev.Deliveries) != 1 || ev.Deliveries[0].EndpointID != ep.ID || !strings.Contains(string(ev.Payload), ep.ID) {
			t.Fatalf("event %s fanned out to %+v", ev.Payload, ev.Deliveries)
		}
	})

	t.Run("a failing endpoint: the answer is in the result, nothing is retried, retry re-sends it", func(t *testing.T) {
		rcv.setStatus(http.StatusInternalServerError)
		var res testResultJSON
		c.call("POST", testPath, "", http.StatusOK, &res)
		if res.Delivered || res.Attempt.StatusCode == nil || *res.Attempt.StatusCode != 500 || res.Attempt.Response != "nope" ||
			res.Delivery.Status != "failed" || res.Delivery.Attempts != 1 {
			t.Fatalf("failed test answered %+v", res)
		}
		rcv.setStatus(0)
		c.call("POST", "/deliveries/"+res.Delivery.ID+"/retry", "", http.StatusAccepted, nil)
		r := rcv.wait(t, 3)
		if r.header.Get("webhook-id") != res.Delivery.ID {
			t.Fatalf("re-sent with webhook-id %q, want %q", r.header.Get("webhook-id"), res.Delivery.ID)
		}
	})

	t.Run("a paused endpoint can be tested", func(t *testing.T) {
		c.call("PATCH", "/endpoints/"+ep.ID, `{"active":false}`, http.StatusOK, nil)
		var res testResultJSON
		if c.call("POST", testPath, "", http.StatusOK, &res); !res.Delivered {
			t.Fatalf("paused endpoint's test: %+v", res)
		}
	})

	t.Run("redirects are not followed", func(t *testing.T) {
		var targetHits atomic.Int64
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
		defer target.Close()
		redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/internal", http.StatusFound))
		defer redirector.Close()
		redirected := c.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["nothing"]}`, redirector.URL))
		var res testResultJSON
		c.call("POST", "/endpoints/"+redirected.ID+"/test", "", http.StatusOK, &res)
		if res.Delivered || res.Attempt.StatusCode == nil || *res.Attempt.StatusCode != http.StatusFound || targetHits.Load() != 0 {
			t.Fatalf("redirect: %+v, redirect target hit %d times", res, targetHits.Load())
		}
	})

	t.Run("a connection error is the attempt's error", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + ln.Addr().String() + "/hook"
		ln.Close()
		dead := c.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["nothing"]}`, closed))
		var res testResultJSON
		c.call("POST", "/endpoints/"+dead.ID+"/test", "", http.StatusOK, &res)
		if res.Delivered || res.Attempt.StatusCode != nil || !strings.Contains(res.Attempt.Error, "refused") {
			t.Fatalf("closed port: %+v", res)
		}
	})

	c.fails("POST", "/endpoints/ep_doesnotexist/test", "", 404, "")
	c.fails("POST", testPath, `{"payload":{}}`, 400, "payload")
}

// TestAPIRefusesPrivateDestinations runs walhook with the default network
// policy: endpoints on loopback, private, link-local, metadata and other
// special addresses are refused when created or changed, and refused again
// at connect time for a URL that got past validation.
func TestAPIRefusesPrivateDestinations(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Delivery.AllowPrivateNetworks = false
	cfg.Delivery.RequireHTTPS = true
	s := start(t, cfg)
	defer s.Stop()
	c := newAPIClient(t, s, token)

	refused := []struct{ name, url string }{
		{"plain http", "http://example.com/hook"},
		{"loopback", "https://127.0.0.1/hook"},
		{"loopback, other address", "https://127.9.9.9:8443/hook"},
		{"IPv6 loopback", "https://[::1]/hook"},
		{"IPv4-mapped loopback", "https://[::ffff:127.0.0.1]/hook"},
		{"cloud metadata", "https://169.254.169.254/latest/meta-data"},
		{"link-local", "https://169.254.10.10/hook"},
		{"private 10/8", "https://10.0.0.1/hook"},
		{"private 192.168/16", "https://192.168.1.10/hook"},
		{"private 172.16/12", "https://172.20.0.5/hook"},
		{"carrier-grade NAT", "https://100.64.0.1/hook"},
		{"multicast", "https://224.0.0.1/hook"},
		{"unspecified", "https://0.0.0.0/hook"},
		{"decimal loopback", "https://2130706433/hook"},
		{"localhost", "https://localhost/hook"},
		{"a .localhost name", "https://api.localhost/hook"},
		{"a .internal name", "https://metadata.google.internal/computeMetadata"},
		{"credentials", "https://user:pass@example.com/hook"},
		{"not http", "gopher://example.com/hook"},
	}
	for _, tt := range refused {
		t.Run("create: "+tt.name, func(t *testing.T) {
			c.fails("POST", "/endpoints", fmt.Sprintf(`{"url":%q,"events":["*"]}`, tt.url), 422, "url")
		})
	}
	ok := c.createEndpoint(`{"url":"https://hooks.example.com/in","events":["*"]}`)
	c.fails("PATCH", "/endpoints/"+ok.ID, `{"url":"https://10.0.0.1/hook"}`, 422, "url")
	c.fails("PATCH", "/endpoints/"+ok.ID, `{"url":"http://hooks.example.com/in"}`, 422, "url")

	t.Run("connect time refuses a loopback destination that got past validation", func(t *testing.T) {
		rcv := newCapture(t)
		// Written behind the API's back, as an endpoint created before the
		// policy changed would be.
		if _, err := s.Store.Pool().Exec(context.Background(), `INSERT INTO endpoints (id, url, event_types, secret) VALUES ('ep_sneaky', $1, '{x}', $2)`,
			rcv.srv.URL, ok.Secret); err != nil {
			t.Fatal(err)
		}
		var res testResultJSON
		c.call("POST", "/endpoints/ep_sneaky/test", "", http.StatusOK, &res)
		if res.Delivered || res.Attempt.StatusCode != nil || !strings.Contains(res.Attempt.Error, "destination address not allowed: 127.0.0.1 is loopback") {
			t.Fatalf("loopback test send: %+v", res.Attempt)
		}
		if rcv.count() != 0 {
			t.Fatalf("the loopback receiver got %d requests", rcv.count())
		}
	})
}
