package app_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/app"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/waitfor"
)

// authApp is the app's auth route for forward mode: it knows a few
// sessions and API keys and names their tenant in X-Org.
type authApp struct {
	mu    sync.Mutex
	calls int
	seen  []http.Header
	srv   *httptest.Server
}

func newAuthApp(t *testing.T) *authApp {
	a := &authApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.calls++
		a.seen = append(a.seen, r.Header.Clone())
		a.mu.Unlock()
		switch cookie, key := r.Header.Get("Cookie"), r.Header.Get("Authorization"); {
		case cookie == "session=alice":
			w.Header().Set("X-Org", "acme")
		case key == "Bearer bob-api-key":
			w.Header().Set("X-Org", "globex")
			w.WriteHeader(http.StatusNoContent)
		case cookie == "session=orphan": // signed in, but in no organisation
		case cookie == "session=banned":
			w.WriteHeader(http.StatusForbidden)
		case cookie == "session=broken":
			w.WriteHeader(http.StatusInternalServerError)
		case cookie == "session=redirected":
			http.Redirect(w, r, "/login", http.StatusFound)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *authApp) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func (a *authApp) lastHeader() http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[len(a.seen)-1]
}

func forwardClient(t *testing.T, s *app.Server, header, value string) *apiClient {
	c := newAPIClient(t, s, "")
	if header != "" {
		c.header.Set(header, value)
	}
	return c
}

func TestAPIForwardAuthLetsTheAppNameTheTenant(t *testing.T) {
	db := pgtest.New(t)
	authApp := newAuthApp(t)
	cfg := testConfig(t, db.DSN)
	cfg.Auth = config.Defaults().Auth
	cfg.Auth.Mode = config.AuthForward
	cfg.Auth.ForwardURL = authApp.srv.URL + "/api/walhook-auth"
	cfg.Auth.ForwardTenantHeader = "X-Org"
	cfg.Auth.ForwardCacheTTL = time.Minute
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := start(t, cfg)
	defer s.Stop()

	alice := forwardClient(t, s, "Cookie", "session=alice")
	bob := forwardClient(t, s, "Authorization", "Bearer bob-api-key")

	t.Run("the app's answer decides", func(t *testing.T) {
		tests := []struct {
			name, header, value string
			code                int
		}{
			{"signed-in session", "Cookie", "session=alice", 200},
			{"API key in Authorization", "Authorization", "Bearer bob-api-key", 200},
			{"unknown session", "Cookie", "session=mallory", 401},
			{"signed in without a tenant", "Cookie", "session=orphan", 403},
			{"refused by the app", "Cookie", "session=banned", 403},
			{"the app fails", "Cookie", "session=broken", 401},
			{"the app redirects to its login", "Cookie", "session=redirected", 401},
			{"walhook's own token means nothing here", "Authorization", "Bearer " + token, 401},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, raw := forwardClient(t, s, tt.header, tt.value).do("GET", "/endpoints", "")
				if code != tt.code {
					t.Fatalf("status %d, want %d: %s", code, tt.code, raw)
				}
			})
		}
		before := authApp.callCount()
		if code, _ := forwardClient(t, s, "", "").do("GET", "/endpoints", ""); code != 401 || authApp.callCount() != before {
			t.Fatalf("a request without credentials: status %d, and the app was asked %d times", code, authApp.callCount()-before)
		}
	})

	t.Run("only Cookie and Authorization reach the app, and answers are cached", func(t *testing.T) {
		c := forwardClient(t, s, "Cookie", "session=alice; theme=dark")
		c.header.Set("X-Private", "not for the app")
		c.call("GET", "/endpoints", "", http.StatusUnauthorized, nil) // unknown to the app: a different cookie
		h := authApp.lastHeader()
		if h.Get("Cookie") != "session=alice; theme=dark" || h.Get("X-Private") != "" {
			t.Fatalf("the app got headers %v", h)
		}
		before := authApp.callCount()
		for range 3 {
			alice.call("GET", "/endpoints", "", http.StatusOK, nil)
		}
		if n := authApp.callCount() - before; n != 0 {
			t.Fatalf("the app was asked %d times for a cached session", n)
		}
	})

	t.Run("tenants are isolated", func(t *testing.T) {
		mine := alice.createEndpoint(`{"url":"https://example.com/acme","events":["*"]}`)
		if mine.TenantID != "acme" {
			t.Fatalf("alice's endpoint has tenant %q, want acme", mine.TenantID)
		}
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/endpoints/" + mine.ID, ""},
			{"PATCH", "/endpoints/" + mine.ID, `{"description":"x"}`},
			{"POST", "/endpoints/" + mine.ID + "/rotate-secret", ""},
			{"DELETE", "/endpoints/" + mine.ID, ""},
		} {
			bob.fails(r.method, r.path, r.body, http.StatusNotFound, "")
		}
		var list pageJSON[endpointJSON]
		if bob.call("GET", "/endpoints", "", http.StatusOK, &list); len(list.Data) != 0 {
			t.Fatalf("bob lists %d endpoints of acme", len(list.Data))
		}
		alice.call("GET", "/endpoints/"+mine.ID, "", http.StatusOK, nil)
	})
}

func TestAPIAuthNoneIsOpenOnLoopbackAndWarned(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Auth = config.Defaults().Auth
	cfg.Auth.Mode = config.AuthNone
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, logs := startLogged(t, cfg)
	defer s.Stop()
	c := newAPIClient(t, s, "")
	ep := c.createEndpoint(`{"url":"https://example.com/hook","events":["*"],"tenant_id":"any"}`)
	c.call("GET", "/endpoints/"+ep.ID, "", http.StatusOK, nil)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "auth.mode is none") {
		t.Fatalf("no warning about auth.mode none in\n%s", logs)
	}

	cfg.Listen = "0.0.0.0:0"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "auth.mode") {
		t.Fatalf("auth.mode none on every interface: %v", err)
	}
}

// TestSecretsAndTokensNeverReachTheLogs drives every path that handles a
// secret or a credential — create, rotate, update, test sends to a failing
// endpoint, deliveries and their retries, refused requests — with debug
// logging on, then searches the captured log for them.
func TestSecretsAndTokensNeverReachTheLogs(t *testing.T) {
	db := pgtest.New(t)
	cfg := tenantConfig(t, db.DSN)
	cfg.Delivery.RetrySchedule = []time.Duration{time.Second}
	cfg.Delivery.CircuitBreaker.Failures = 0 // every retry is attempted
	s, logs := startLogged(t, cfg)
	defer s.Stop()
	admin, acme := newAPIClient(t, s, token), newAPIClient(t, s, acmeToken)
	rcv := newCapture(t)
	rcv.setStatus(http.StatusInternalServerError)

	var secrets []string
	ep := acme.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["*"],"headers":{"X-Api-Key":"header-value-0123456789"}}`, rcv.srv.URL))
	secrets = append(secrets, ep.Secret)
	for range 2 {
		var r endpointJSON
		acme.call("POST", "/endpoints/"+ep.ID+"/rotate-secret", "", http.StatusOK, &r)
		secrets = append(secrets, r.Secret)
	}
	acme.call("PATCH", "/endpoints/"+ep.ID, `{"description":"failing on purpose"}`, http.StatusOK, nil)
	acme.call("POST", "/endpoints/"+ep.ID+"/test", "", http.StatusOK, nil)
	insertTenantEvents(t, db.DSN, "acme", "order.created", 3)
	waitfor.True(t, "deliveries to be retried", 15*time.Second, func() bool { return rcv.count() >= 7 })
	var list pageJSON[deliveryJSON]
	admin.call("GET", "/deliveries?status=retrying", "", http.StatusOK, &list)
	for _, d := range list.Data {
		admin.do("POST", "/deliveries/"+d.ID+"/retry", "")
	}
	forwardClient(t, s, "Authorization", "Bearer wrong-token-0123456789").do("GET", "/endpoints", "")
	acme.do("GET", "/endpoints/"+ep.ID+"/nope", "")

	out := logs.String()
	if !strings.Contains(out, "endpoint_id") {
		t.Fatalf("the log is suspiciously quiet:\n%s", out)
	}
	for _, secret := range append(secrets, strings.TrimPrefix(secrets[0], "whsec_"), token, acmeToken, globexToken, "wrong-token-0123456789", "header-value-0123456789") {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	for _, path := range []string{"/endpoints", "/endpoints/" + ep.ID, "/deliveries", "/events"} {
		raw := admin.call("GET", path, "", http.StatusOK, nil)
		for _, secret := range secrets {
			if strings.Contains(string(raw), secret) {
				t.Errorf("GET %s shows a secret", path)
			}
		}
	}
}
