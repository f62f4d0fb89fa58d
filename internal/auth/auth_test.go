package auth_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/auth"
	"github.com/walhook/walhook/internal/config"
)

const (
	adminTok = "admin-token-0123456789"
	acmeTok  = "acme-token-0123456789"
)

func request(header ...string) *http.Request {
	r := httptest.NewRequest("GET", "/webhooks/api/endpoints", nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func status(err error) int {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return -1
}

func TestTokens(t *testing.T) {
	a, err := auth.NewTokens([]string{adminTok}, []string{"acme=" + acmeTok, "org=with=equals=tok-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header string
		want   auth.Principal
		status int
	}{
		{"admin", "Bearer " + adminTok, auth.Principal{All: true}, 0},
		{"tenant", "Bearer " + acmeTok, auth.Principal{Tenant: "acme"}, 0},
		{"tenant split at the first =", "Bearer with=equals=tok-0123456789abcdef", auth.Principal{Tenant: "org"}, 0},
		{"scheme is case-insensitive", "bearer " + acmeTok, auth.Principal{Tenant: "acme"}, 0},
		{"no header", "", auth.Principal{}, 401},
		{"basic auth", "Basic " + adminTok, auth.Principal{}, 401},
		{"empty token", "Bearer ", auth.Principal{}, 401},
		{"prefix of a token", "Bearer " + adminTok[:10], auth.Principal{}, 401},
		{"token with a suffix", "Bearer " + adminTok + "x", auth.Principal{}, 401},
		{"the whole tenant entry", "Bearer acme=" + acmeTok, auth.Principal{}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(request("Authorization", tt.header))
			if tt.status != 0 {
				if status(err) != tt.status {
					t.Fatalf("err %v, want status %d", err, tt.status)
				}
				return
			}
			if err != nil || p != tt.want {
				t.Fatalf("principal %+v, %v; want %+v", p, err, tt.want)
			}
		})
	}
	if _, err := auth.NewTokens(nil, []string{"no-equals-sign"}); err == nil {
		t.Fatal("a tenant token without TENANT= accepted")
	}
}

func TestPrincipalScope(t *testing.T) {
	if (auth.Principal{All: true}).Scope() != nil {
		t.Fatal("an admin is scoped")
	}
	if s := (auth.Principal{Tenant: ""}).Scope(); s == nil || *s != "" {
		t.Fatal("a principal of the empty tenant sees every tenant")
	}
}

// app is an auth route answering per Cookie value.
type app struct {
	calls atomic.Int64
	srv   *httptest.Server
}

func newApp(t *testing.T) *app {
	a := &app{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.calls.Add(1)
		switch r.Header.Get("Cookie") {
		case "s=acme":
			w.Header().Set("X-Tenant", " acme ")
		case "s=none":
		case "s=forbidden":
			w.WriteHeader(403)
		case "s=error":
			w.WriteHeader(502)
		case "s=login":
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		default:
			if r.Header.Get("Authorization") == "Bearer key" {
				w.Header().Set("X-Tenant", "keyed")
				return
			}
			w.WriteHeader(401)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestForwardMapsTheAppsAnswers(t *testing.T) {
	a := newApp(t)
	f, err := auth.NewForward(auth.ForwardOptions{URL: a.srv.URL, TenantHeader: "X-Tenant"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header []string
		tenant string
		status int
	}{
		{"2xx with a tenant", []string{"Cookie", "s=acme"}, "acme", 0},
		{"credentials in Authorization", []string{"Authorization", "Bearer key"}, "keyed", 0},
		{"2xx without a tenant", []string{"Cookie", "s=none"}, "", 403},
		{"403", []string{"Cookie", "s=forbidden"}, "", 403},
		{"401", []string{"Cookie", "s=who"}, "", 401},
		{"5xx", []string{"Cookie", "s=error"}, "", 401},
		{"redirect to a login page", []string{"Cookie", "s=login"}, "", 401},
		{"no credentials", nil, "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.Authenticate(request(tt.header...))
			if tt.status != 0 {
				if status(err) != tt.status {
					t.Fatalf("err %v, want status %d", err, tt.status)
				}
				return
			}
			if err != nil || p != (auth.Principal{Tenant: tt.tenant}) {
				t.Fatalf("principal %+v, %v; want tenant %q", p, err, tt.tenant)
			}
		})
	}
}

func TestForwardCachesAnswersForTheTTL(t *testing.T) {
	a := newApp(t)
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	f, err := auth.NewForward(auth.ForwardOptions{URL: a.srv.URL, TenantHeader: "X-Tenant", CacheTTL: 5 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(cookie string) {
		t.Helper()
		_, _ = f.Authenticate(request("Cookie", cookie))
	}
	steps := []struct {
		name      string
		advance   time.Duration
		cookie    string
		wantCalls int64
	}{
		{"first request asks", 0, "s=acme", 1},
		{"same session within the TTL is cached", 4 * time.Second, "s=acme", 1},
		{"another session asks", 0, "s=forbidden", 2},
		{"a refusal is cached too", 0, "s=forbidden", 2},
		{"the app's failure is not cached", 0, "s=error", 3},
		{"... so the next request asks again", 0, "s=error", 4},
		{"after the TTL the app is asked again", 2 * time.Second, "s=acme", 5},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		ask(st.cookie)
		if got := a.calls.Load(); got != st.wantCalls {
			t.Fatalf("%s: the app was asked %d times in all, want %d", st.name, got, st.wantCalls)
		}
	}

	off, _ := auth.NewForward(auth.ForwardOptions{URL: a.srv.URL, TenantHeader: "X-Tenant", Now: clk.Now})
	before := a.calls.Load()
	for range 3 {
		_, _ = off.Authenticate(request("Cookie", "s=acme"))
	}
	if n := a.calls.Load() - before; n != 3 {
		t.Fatalf("with the cache off the app was asked %d times for 3 requests", n)
	}
}

func TestForwardUnreachableAppIs503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f, err := auth.NewForward(auth.ForwardOptions{URL: "http://" + addr + "/auth", CacheTTL: time.Minute, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Authenticate(request("Cookie", "s=acme")); status(err) != http.StatusServiceUnavailable {
		t.Fatalf("err %v, want 503", err)
	}
}

func TestNewFollowsTheMode(t *testing.T) {
	c := config.Defaults().Auth
	for mode, want := range map[string]string{config.AuthToken: "*auth.Tokens", config.AuthNone: "auth.None", config.AuthForward: "*auth.Forward"} {
		c.Mode, c.ForwardURL = mode, "http://127.0.0.1:3000/auth"
		a, err := auth.New(c, nil)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if got := fmt.Sprintf("%T", a); got != want {
			t.Errorf("mode %s built %s, want %s", mode, got, want)
		}
	}
	if p, err := (auth.None{}).Authenticate(request()); err != nil || !p.All {
		t.Fatalf("none: %+v, %v", p, err)
	}
}
