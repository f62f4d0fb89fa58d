package ui_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/auth"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/netguard"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/ui"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	adminToken  = "admin-token-0123456789"
	acmeToken   = "acme-token-0123456789"
	globexToken = "globex-token-0123456789"
)

// bundle is a dashboard on a fresh database.
type bundle struct {
	t   *testing.T
	st  *store.Store
	svc *manage.Service
	srv *httptest.Server
	now time.Time
	// circuits is what the dispatcher would say (read by the handler: set
	// before serving).
	circuits map[string]string
}

// setup serves the dashboard at /webhooks/ in mode with authn (nil: the
// configured tokens).
func setup(t *testing.T, mode string, authn auth.Authenticator) *bundle {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	st, err := store.Open(ctx, db.DSN, "walhook", 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if authn == nil {
		if authn, err = auth.NewTokens([]string{adminToken}, []string{"acme=" + acmeToken, "globex=" + globexToken}); err != nil {
			t.Fatal(err)
		}
	}
	b := &bundle{t: t, st: st, svc: &manage.Service{Store: st, Network: netguard.Policy{AllowPrivate: true}, Catalogue: []string{"order.created", "order.paid"}},
		now: time.Now()}
	h, err := ui.Handler(ui.Options{Prefix: "/webhooks/", Mode: mode, Auth: authn, Service: b.svc, SessionTTL: time.Hour,
		Now: func() time.Time { return b.now }, Circuits: func() map[string]string { return b.circuits }})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	return b
}

// browser is a client with cookies that does not follow redirects.
type browser struct {
	t    *testing.T
	b    *bundle
	c    *http.Client
	csrf string // of the last page read
}

func (b *bundle) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: b.t, b: b, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (br *browser) do(req *http.Request) (*http.Response, string) {
	br.t.Helper()
	resp, err := br.c.Do(req)
	if err != nil {
		br.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	if m := csrfRE.FindStringSubmatch(body); m != nil {
		br.csrf = m[1]
	}
	return resp, body
}

func (br *browser) get(path string) (*http.Response, string) {
	br.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, br.b.srv.URL+path, nil)
	return br.do(req)
}

// post sends a form as the browser would from this origin, with the CSRF
// token of the last page unless the form has one.
func (br *browser) post(path string, form url.Values, header ...string) (*http.Response, string) {
	br.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", br.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, br.b.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", br.b.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return br.do(req)
}

func want(t *testing.T, resp *http.Response, body string, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s %s: status %d, want %d:\n%s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, code, body)
	}
}

// signIn signs br in with a token.
func (br *browser) signIn(token string) {
	br.t.Helper()
	resp, body := br.get("/webhooks/sign-in")
	want(br.t, resp, body, http.StatusOK)
	resp, body = br.post("/webhooks/sign-in", url.Values{"token": {token}, "next": {"/webhooks/"}})
	want(br.t, resp, body, http.StatusSeeOther)
}

// endpoint creates an endpoint directly.
func (b *bundle) endpoint(tenant, u string, events ...string) manage.Endpoint {
	b.t.Helper()
	ep, err := b.svc.CreateEndpoint(context.Background(), manage.EndpointInput{URL: u, Events: events, TenantID: tenant, Description: "desc <b>bold</b>"})
	if err != nil {
		b.t.Fatal(err)
	}
	return ep
}

// delivery records an event with payload and one attempt for ep.
func (b *bundle) delivery(ep manage.Endpoint, payload string, status store.Status, code int, response string) string {
	b.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ev := store.Event{ID: store.NewID("evt_"), Type: "order.created", TenantID: ep.TenantID, Payload: []byte(payload), CreatedAt: now, ReceivedAt: now, CommittedAt: now}
	d := store.Delivery{ID: store.DeliveryID(now, ev.ID, ep.ID), EndpointID: ep.ID, EventID: ev.ID, EventType: ev.Type, TenantID: ep.TenantID,
		Status: status, Attempts: 1, MaxAttempts: 5, LastStatusCode: code, LastResponse: response, CreatedAt: now, UpdatedAt: now}
	if status == store.StatusDelivered {
		d.DeliveredAt = now
	}
	a := store.Attempt{DeliveryID: d.ID, Attempt: 1, EndpointID: ep.ID, StartedAt: now, Duration: 12 * time.Millisecond, StatusCode: code, Response: response}
	if err := b.st.RecordSent(context.Background(), &ev, &d, &a); err != nil {
		b.t.Fatal(err)
	}
	return d.ID
}

func TestTokenSignInMakesASignedSessionWithoutTheToken(t *testing.T) {
	b := setup(t, config.AuthToken, nil)
	br := b.browser()

	resp, body := br.get("/webhooks/deliveries?status=failed")
	want(t, resp, body, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/webhooks/sign-in?next="+url.QueryEscape("/webhooks/deliveries?status=failed") {
		t.Fatalf("redirected to %q", loc)
	}
	resp, body = br.get("/webhooks/sign-in")
	want(t, resp, body, http.StatusOK)
	resp, body = br.post("/webhooks/sign-in", url.Values{"token": {"wrong-token-0123456789"}, "next": {"/webhooks/deliveries"}})
	want(t, resp, body, http.StatusOK) // the form again, with its error
	if !strings.Contains(body, "That token is not valid.") || !strings.Contains(body, `aria-invalid="true"`) {
		t.Fatalf("no error beside the field:\n%s", body)
	}
	// next must stay on the dashboard.
	resp, body = br.post("/webhooks/sign-in", url.Values{"token": {adminToken}, "next": {"//evil.example/x"}})
	want(t, resp, body, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/webhooks/" {
		t.Fatalf("after sign-in: Location %q", loc)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "walhook_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/webhooks/" || session.MaxAge != 3600 {
		t.Fatalf("session cookie %+v", session)
	}
	if strings.Contains(session.Value, adminToken) || strings.Contains(session.Value, "YWRtaW4tdG9rZW4") {
		t.Fatal("the session cookie carries the token")
	}
	resp, body = br.get("/webhooks/")
	want(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "Admin · every tenant") || !strings.Contains(body, "Sign out") {
		t.Fatalf("signed-in page:\n%s", body)
	}

	// A tampered cookie is no session.
	forged := b.browser()
	u, _ := url.Parse(b.srv.URL + "/webhooks/")
	v := []byte(session.Value)
	v[3] ^= 1
	forged.c.Jar.SetCookies(u, []*http.Cookie{{Name: "walhook_session", Value: string(v), Path: "/webhooks/"}})
	resp, body = forged.get("/webhooks/")
	want(t, resp, body, http.StatusSeeOther)

	// Nor is an expired one.
	b.now = b.now.Add(time.Hour + time.Second)
	resp, body = br.get("/webhooks/")
	want(t, resp, body, http.StatusSeeOther)
	b.now = b.now.Add(-time.Hour - time.Second)

	// Sign out ends it.
	br.get("/webhooks/")
	resp, body = br.post("/webhooks/sign-out", nil)
	want(t, resp, body, http.StatusSeeOther)
	resp, body = br.get("/webhooks/")
	want(t, resp, body, http.StatusSeeOther)

	// A poll without a session is a bare 401, not a redirect.
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/webhooks/deliveries/rows", nil)
	req.Header.Set("X-Walhook-Fragment", "1")
	resp, body = br.do(req)
	want(t, resp, body, http.StatusUnauthorized)
}

func TestEveryPostNeedsTheCSRFTokenAndTheSameOrigin(t *testing.T) {
	b := setup(t, config.AuthToken, nil)
	ep := b.endpoint("", "http://127.0.0.1:1/hook", "order.*")
	br := b.browser()
	br.signIn(adminToken)
	resp, body := br.get("/webhooks/endpoints/" + ep.ID)
	want(t, resp, body, http.StatusOK)
	good := br.csrf
	pause := "/webhooks/endpoints/" + ep.ID + "/pause"

	for name, tc := range map[string]struct {
		form   url.Values
		header []string
	}{
		"no token":        {url.Values{"csrf": {""}}, nil},
		"wrong token":     {url.Values{"csrf": {"AAAA" + good[4:]}}, nil},
		"cross-site":      {url.Values{"csrf": {good}}, []string{"Sec-Fetch-Site", "cross-site"}},
		"other origin":    {url.Values{"csrf": {good}}, []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
		"other's session": {url.Values{"csrf": {otherToken(t, b)}}, nil},
	} {
		resp, body := br.post(pause, tc.form, tc.header...)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403:\n%s", name, resp.StatusCode, body)
		}
	}
	if e, _ := b.st.GetEndpoint(context.Background(), ep.ID, nil); !e.Active {
		t.Fatal("a refused form paused the endpoint")
	}
	resp, body = br.post(pause, url.Values{"csrf": {good}})
	want(t, resp, body, http.StatusSeeOther)
	if e, _ := b.st.GetEndpoint(context.Background(), ep.ID, nil); e.Active {
		t.Fatal("the form did not pause the endpoint")
	}
}

// otherToken is a valid CSRF token of another session.
func otherToken(t *testing.T, b *bundle) string {
	other := b.browser()
	other.signIn(adminToken)
	other.get("/webhooks/")
	return other.csrf
}

func TestUntrustedTextIsEscaped(t *testing.T) {
	b := setup(t, config.AuthNone, auth.None{})
	ep := b.endpoint("", "http://127.0.0.1:1/x?a=<script>", "order.*")
	id := b.delivery(ep, `{"html": "<script>alert(1)</script>", "q": "\"'&"}`, store.StatusFailed, 500, `<img src=x onerror=alert(2)>`)
	br := b.browser()
	for _, path := range []string{"/webhooks/", "/webhooks/deliveries", "/webhooks/deliveries/" + id, "/webhooks/endpoints/" + ep.ID,
		"/webhooks/deliveries/rows", "/webhooks/deliveries/" + id + "/live"} {
		resp, body := br.get(path)
		want(t, resp, body, http.StatusOK)
		for _, raw := range []string{"<script>", "<img src=x", "<b>bold</b>"} {
			if strings.Contains(body, raw) {
				t.Fatalf("%s: %q rendered as markup", path, raw)
			}
		}
	}
	_, body := br.get("/webhooks/deliveries/" + id)
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(body, "&lt;img src=x onerror=alert(2)&gt;") {
		t.Fatalf("payload or response not shown as text:\n%s", body)
	}
	if !strings.Contains(body, `&#34;html&#34;: &#34;&lt;script&gt;`) {
		t.Fatalf("payload not pretty-printed:\n%s", body)
	}
}

func TestTenantsSeeOnlyTheirOwnAndOthersAre404(t *testing.T) {
	b := setup(t, config.AuthToken, nil)
	acme := b.endpoint("acme", "http://127.0.0.1:1/acme", "order.*")
	globex := b.endpoint("globex", "http://127.0.0.1:1/globex", "order.*")
	acmeD := b.delivery(acme, `{"n":1}`, store.StatusDelivered, 200, "ok")
	globexD := b.delivery(globex, `{"n":2}`, store.StatusFailed, 500, "no")

	br := b.browser()
	br.signIn(acmeToken)
	for _, path := range []string{"/webhooks/", "/webhooks/deliveries", "/webhooks/deliveries/rows"} {
		resp, body := br.get(path)
		want(t, resp, body, http.StatusOK)
		if !strings.Contains(body, acme.ID) && !strings.Contains(body, acmeD) {
			t.Fatalf("%s: acme's objects missing", path)
		}
		if strings.Contains(body, globex.ID) || strings.Contains(body, globexD) || strings.Contains(body, "/globex") {
			t.Fatalf("%s: shows globex's objects:\n%s", path, body)
		}
	}
	resp, body := br.get("/webhooks/deliveries?endpoint_id=" + globex.ID)
	want(t, resp, body, http.StatusOK)
	if strings.Contains(body, globexD) {
		t.Fatal("a filter on another tenant's endpoint shows its deliveries")
	}
	unknown := map[string]bool{}
	for _, path := range []string{"/webhooks/endpoints/" + globex.ID, "/webhooks/endpoints/ep_unknown", "/webhooks/endpoints/" + globex.ID + "/edit",
		"/webhooks/deliveries/" + globexD, "/webhooks/deliveries/msg_unknown", "/webhooks/deliveries/" + globexD + "/live"} {
		resp, body := br.get(path)
		want(t, resp, body, http.StatusNotFound)
		unknown[body] = true
	}
	if len(unknown) > 2 { // pages and fragments: the same answer for unknown and another tenant's
		t.Fatalf("404 pages differ between unknown and other-tenant ids: %d variants", len(unknown))
	}
	br.get("/webhooks/")
	for _, action := range []string{"pause", "resume", "test", "rotate-secret", "delete", "recover", "edit"} {
		resp, body := br.post("/webhooks/endpoints/"+globex.ID+"/"+action, url.Values{"since": {"1h"}, "url": {"http://127.0.0.1:1/x"}, "patterns": {"*"}})
		want(t, resp, body, http.StatusNotFound)
	}
	resp, body = br.post("/webhooks/deliveries/"+globexD+"/retry", nil)
	want(t, resp, body, http.StatusNotFound)
	if e, err := b.st.GetEndpoint(context.Background(), globex.ID, nil); err != nil || !e.Active {
		t.Fatalf("globex's endpoint changed by acme: %v", err)
	}

	// A tenant creates endpoints for itself, whatever the form says.
	br.get("/webhooks/endpoints/new")
	resp, body = br.post("/webhooks/endpoints/new", url.Values{"url": {"http://127.0.0.1:1/new"}, "events": {"order.created"}, "tenant_id": {"globex"}})
	want(t, resp, body, http.StatusCreated)
	if strings.Contains(body, `name="tenant_id"`) {
		t.Fatal("a tenant is offered the tenant field")
	}
	eps, err := b.st.PageEndpoints(context.Background(), store.EndpointPage{Tenant: ptr("acme")})
	if err != nil || len(eps) != 2 {
		t.Fatalf("acme has %d endpoints (%v), want 2", len(eps), err)
	}

	admin := b.browser()
	admin.signIn(adminToken)
	resp, body = admin.get("/webhooks/")
	want(t, resp, body, http.StatusOK)
	if !strings.Contains(body, globex.ID) || !strings.Contains(body, acme.ID) || !strings.Contains(body, "tenant globex") {
		t.Fatal("the admin does not see every tenant")
	}
}

func ptr[T any](v T) *T { return &v }

// fakeForward answers as forward auth would.
type fakeForward struct{ err error }

func (f fakeForward) Authenticate(r *http.Request) (auth.Principal, error) {
	if f.err != nil {
		return auth.Principal{}, f.err
	}
	if c, err := r.Cookie("app_session"); err == nil && c.Value == "acme-user" {
		return auth.Principal{Tenant: "acme"}, nil
	}
	return auth.Principal{}, &auth.Error{Status: http.StatusUnauthorized, Message: "not signed in"}
}

func TestForwardModeUsesTheAppsSession(t *testing.T) {
	b := setup(t, config.AuthForward, fakeForward{})
	ep := b.endpoint("acme", "http://127.0.0.1:1/acme", "order.*")
	anon := b.browser()
	resp, body := anon.get("/webhooks/")
	want(t, resp, body, http.StatusUnauthorized)
	if !strings.Contains(body, "Sign in to the application first") || strings.Contains(body, ep.ID) {
		t.Fatalf("anonymous page:\n%s", body)
	}
	br := b.browser()
	u, _ := url.Parse(b.srv.URL + "/")
	br.c.Jar.SetCookies(u, []*http.Cookie{{Name: "app_session", Value: "acme-user", Path: "/"}})
	resp, body = br.get("/webhooks/endpoints/" + ep.ID)
	want(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "Tenant <strong>acme</strong>") || strings.Contains(body, "Sign out") {
		t.Fatal("forward mode page does not name the tenant, or offers sign-out")
	}
	resp, body = br.post("/webhooks/endpoints/"+ep.ID+"/pause", nil)
	want(t, resp, body, http.StatusSeeOther)
	resp, body = br.post("/webhooks/endpoints/"+ep.ID+"/resume", url.Values{"csrf": {"x"}})
	want(t, resp, body, http.StatusForbidden)

	down := setup(t, config.AuthForward, fakeForward{err: &auth.Error{Status: http.StatusServiceUnavailable, Message: "app down"}})
	resp, body = down.browser().get("/webhooks/")
	want(t, resp, body, http.StatusServiceUnavailable)
	other := setup(t, config.AuthForward, fakeForward{err: errors.New("boom")})
	resp, body = other.browser().get("/webhooks/")
	want(t, resp, body, http.StatusUnauthorized)
}

func TestCreateShowsErrorsBesideFieldsAndTheSecretOnce(t *testing.T) {
	b := setup(t, config.AuthNone, auth.None{})
	br := b.browser()
	resp, body := br.get("/webhooks/endpoints/new")
	want(t, resp, body, http.StatusOK)
	for _, s := range []string{`value="order.created"`, `value="order.paid"`, `<label for="url">`, `name="tenant_id"`} {
		if !strings.Contains(body, s) {
			t.Fatalf("form lacks %s", s)
		}
	}
	resp, body = br.post("/webhooks/endpoints/new", url.Values{"url": {"ftp://x"}, "patterns": {"order.*"}, "headers": {"X-Team: payments\nbroken"}})
	want(t, resp, body, http.StatusOK)
	if !strings.Contains(body, `id="headers-error"`) || !strings.Contains(body, "line 2 must be Name: value") {
		t.Fatalf("header error not beside its field:\n%s", body)
	}
	resp, body = br.post("/webhooks/endpoints/new", url.Values{"url": {"ftp://x"}, "patterns": {"order.*"}, "rate_limit": {"5"}})
	want(t, resp, body, http.StatusOK)
	if !strings.Contains(body, `id="url-error"`) || !strings.Contains(body, `aria-invalid="true"`) || !strings.Contains(body, `value="ftp://x"`) {
		t.Fatalf("url error not beside its field, or input lost:\n%s", body)
	}
	resp, body = br.post("/webhooks/endpoints/new", url.Values{"url": {"http://127.0.0.1:9/hook"}, "patterns": {""}})
	want(t, resp, body, http.StatusOK)
	if !strings.Contains(body, `id="events-error"`) {
		t.Fatalf("events error missing:\n%s", body)
	}
	resp, body = br.post("/webhooks/endpoints/new", url.Values{"url": {"http://127.0.0.1:9/hook"}, "events": {"order.paid"},
		"patterns": {"invoice.*, *.failed"}, "headers": {"X-Team: payments"}, "description": {"Payments"}})
	want(t, resp, body, http.StatusCreated)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("the secret page may be cached")
	}
	m := regexp.MustCompile(`<code id="secret" class="secret">(whsec_[^<]+)</code>`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, "it will not be shown again") {
		t.Fatalf("secret not shown once:\n%s", body)
	}
	secret := html.UnescapeString(m[1])
	eps, _ := b.st.PageEndpoints(context.Background(), store.EndpointPage{})
	if len(eps) != 1 || eps[0].Secret != secret || fmt.Sprint(eps[0].EventTypes) != "[order.paid invoice.* *.failed]" || eps[0].Headers["X-Team"] != "payments" {
		t.Fatalf("stored %+v", eps)
	}
	for _, path := range []string{"/webhooks/", "/webhooks/endpoints/" + eps[0].ID, "/webhooks/endpoints/" + eps[0].ID + "/edit"} {
		_, body := br.get(path)
		if strings.Contains(body, secret) {
			t.Fatalf("%s shows the secret again", path)
		}
	}
	// Edit keeps catalogue types checked and the rest as patterns.
	_, body = br.get("/webhooks/endpoints/" + eps[0].ID + "/edit")
	if !strings.Contains(body, `value="order.paid" checked`) || !strings.Contains(body, "invoice.*\n*.failed</textarea>") {
		t.Fatalf("edit form:\n%s", body)
	}
	resp, body = br.post("/webhooks/endpoints/"+eps[0].ID+"/edit", url.Values{"url": {"http://127.0.0.1:9/other"}, "events": {"order.created"}})
	want(t, resp, body, http.StatusSeeOther)
	e, _ := b.st.GetEndpoint(context.Background(), eps[0].ID, nil)
	if e.URL != "http://127.0.0.1:9/other" || fmt.Sprint(e.EventTypes) != "[order.created]" || len(e.Headers) != 0 {
		t.Fatalf("after edit: %+v", e)
	}
	// Rotation shows the new secret once.
	br.get("/webhooks/endpoints/" + e.ID)
	resp, body = br.post("/webhooks/endpoints/"+e.ID+"/rotate-secret", nil)
	want(t, resp, body, http.StatusOK)
	if e2, _ := b.st.GetEndpoint(context.Background(), e.ID, nil); !strings.Contains(html.UnescapeString(body), e2.Secret) || e2.Secret == secret {
		t.Fatal("rotation did not show the new secret")
	}
}

func TestSecurityHeadersAndStaticFiles(t *testing.T) {
	b := setup(t, config.AuthNone, auth.None{})
	br := b.browser()
	for _, path := range []string{"/webhooks/", "/webhooks/static/app.js", "/webhooks/static/app.css", "/webhooks/nope", "/webhooks/deliveries/x"} {
		resp, _ := br.get(path)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("%s: headers %v", path, resp.Header)
		}
	}
	resp, body := br.get("/webhooks/static/app.js")
	want(t, resp, body, http.StatusOK)
	if !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("app.js served as %q", resp.Header.Get("Content-Type"))
	}
	resp, body = br.get("/webhooks/static/")
	want(t, resp, body, http.StatusNotFound)
	resp, body = br.get("/webhooks")
	want(t, resp, body, http.StatusMovedPermanently)
	// No inline script or style anywhere.
	_, body = br.get("/webhooks/")
	if m := regexp.MustCompile(`<script>|<script [^>]*>[^<]|style=|<style|\son[a-z]+=`).FindString(body); m != "" {
		t.Fatalf("inline script or style %q:\n%s", m, body)
	}
}

func TestEndpointListShowsStateAndActivity(t *testing.T) {
	b := setup(t, config.AuthNone, auth.None{})
	ctx := context.Background()
	busy := b.endpoint("", "http://127.0.0.1:1/busy", "order.*")
	b.delivery(busy, `{}`, store.StatusDelivered, 200, "ok")
	b.delivery(busy, `{}`, store.StatusDelivered, 200, "ok")
	b.delivery(busy, `{}`, store.StatusFailed, 500, "no")
	paused := b.endpoint("", "http://127.0.0.1:1/paused", "order.*")
	if _, err := b.svc.SetEndpointActive(ctx, paused.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	gone := b.endpoint("", "http://127.0.0.1:1/gone", "order.*")
	if _, err := b.st.Pool().Exec(ctx, `UPDATE walhook.endpoints SET active = false, disabled_reason = 'answered 410 Gone', disabled_at = now() WHERE id = $1`, gone.ID); err != nil {
		t.Fatal(err)
	}
	open := b.endpoint("", "http://127.0.0.1:1/open", "order.*")
	b.circuits = map[string]string{open.ID: "open"}

	_, body := b.browser().get("/webhooks/")
	for _, s := range []string{
		`66.6 % <span class="muted">of 3</span>`,
		`<span class="state state-paused">paused</span>`,
		`<span class="state state-disabled">disabled</span> <span class="reason">answered 410 Gone</span>`,
		`<span class="state state-circuit">circuit open</span>`,
		`<span class="state state-active">active</span>`,
		`<li class="chip">order.*</li>`,
		`class="spark-ok"`, `class="spark-bad"`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("endpoint list lacks %s", s)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
	// The detail page offers the action its state needs.
	_, body = b.browser().get("/webhooks/endpoints/" + gone.ID)
	if !strings.Contains(body, ">Re-enable</button>") {
		t.Error("a disabled endpoint is not offered Re-enable")
	}
	_, body = b.browser().get("/webhooks/endpoints/" + paused.ID)
	if !strings.Contains(body, ">Resume</button>") {
		t.Error("a paused endpoint is not offered Resume")
	}
}
