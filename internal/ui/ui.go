// Package ui serves walhook's dashboard: server-rendered HTML pages (package
// html/template, templates and static files embedded with go:embed, nothing
// from a CDN) at api.prefix, beside the JSON API under <api.prefix>api/,
// with a little progressive JavaScript (copy buttons, confirmations, live
// refresh of delivery tables by polling an HTML fragment).
//
// Pages, relative to the prefix without its trailing slash (base):
//
//	GET  base/                         endpoints with state, events, 24 h activity; recent deliveries
//	GET  base/endpoints/new            add an endpoint   (POST: create, shows the secret once)
//	GET  base/endpoints/{id}           endpoint detail with its deliveries and actions
//	GET  base/endpoints/{id}/edit      edit              (POST: update)
//	POST base/endpoints/{id}/{action}  test, rotate-secret, pause, resume, recover, delete
//	GET  base/deliveries               the delivery log, filterable, live
//	GET  base/deliveries/rows          the log's rows alone (polled by app.js)
//	GET  base/deliveries/{id}          delivery detail: payload, headers, attempts
//	GET  base/deliveries/{id}/live     its status and attempts alone (polled)
//	POST base/deliveries/{id}/retry    retry now
//	GET  base/sign-in                  token sign-in (auth.mode token; POST signs in)
//	POST base/sign-out
//	GET  base/static/{file}            embedded CSS, JavaScript, icon
//
// Invariants:
//   - Who the caller is comes from package auth, as for the API: in mode
//     token from a signed session cookie made at sign-in from a valid token
//     (the cookie holds the principal, an expiry and a CSRF nonce, never the
//     token), in mode forward from the app on every request (its cookie
//     reaches walhook because the dashboard is on the app's origin), in mode
//     none every caller is admin. Every read and write is scoped by the
//     principal's tenant exactly as the API's; another tenant's object is
//     the same 404 page as an unknown id.
//   - Every POST passes net/http's CrossOriginProtection (Sec-Fetch-Site,
//     Origin) and carries a CSRF token, an HMAC of the session's nonce and
//     the principal, compared in constant time.
//   - Every answer carries a strict Content-Security-Policy (no inline
//     script or style), nosniff, no-referrer and frame-ancestors 'none';
//     every value is escaped by html/template (payloads are untrusted).
//   - Secrets appear once: in the answer to the POST that created or rotated
//     them (Cache-Control: no-store), never in a page that can be reloaded.
package ui

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/walhook/walhook/internal/auth"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/manage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the dashboard.
type Options struct {
	// Prefix is api.prefix, e.g. "/webhooks/": the dashboard's root.
	Prefix string
	// Mode is auth.mode: token (sign-in form), forward or none.
	Mode string
	Auth auth.Authenticator
	// Service performs every read and write.
	Service *manage.Service
	// Circuits, when set, names the endpoints whose circuit is not closed
	// (delivery.Dispatcher.Circuits).
	Circuits func() map[string]string
	// UserAgent is delivery.user_agent, shown in reconstructed headers.
	UserAgent string
	// SessionTTL is how long a sign-in lasts; 0: 12 h.
	SessionTTL time.Duration
	// Key signs sessions and CSRF tokens; nil: 32 random bytes for this
	// process (a restart signs everyone out).
	Key    []byte
	Logger *slog.Logger
	Now    func() time.Time
}

type server struct {
	opts   Options
	base   string // prefix without its trailing slash
	key    []byte
	log    *slog.Logger
	now    func() time.Time
	pages  map[string]*pageTemplate
	origin *http.CrossOriginProtection
}

type ctxKey struct{}

// reqState is what the middleware learnt about a request.
type reqState struct {
	principal auth.Principal
	signedIn  bool   // a principal was established
	csrf      string // the token forms must carry
	session   bool   // signed in with a session cookie (mode token)
}

func state(r *http.Request) *reqState {
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	if st == nil {
		return &reqState{}
	}
	return st
}

// scope is the tenant filter of the caller: nil for admins.
func scope(r *http.Request) *string { return state(r).principal.Scope() }

// Handler returns the dashboard's handler. Mount it for the prefix (except
// <prefix>api/, the JSON API's).
func Handler(opts Options) (http.Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "walhook"
	}
	if opts.Mode == "" {
		opts.Mode = config.AuthToken
	}
	key := opts.Key
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &server{opts: opts, base: strings.TrimSuffix(opts.Prefix, "/"), key: key, log: opts.Logger, now: opts.Now,
		pages: pages, origin: http.NewCrossOriginProtection()}
	s.origin.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, http.StatusForbidden, "This form came from another site and was refused.")
	}))

	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	b := s.base
	mux.Handle("GET "+b+"/static/", s.headers(http.StripPrefix(b+"/static/", staticHandler(static))))
	mux.Handle("GET "+b+"/sign-in", s.public(s.signInPage))
	mux.Handle("POST "+b+"/sign-in", s.public(s.signIn))
	mux.Handle("POST "+b+"/sign-out", s.public(s.signOut))

	page := func(pattern string, h func(http.ResponseWriter, *http.Request)) { mux.Handle(pattern, s.private(h)) }
	page("GET "+b+"/{$}", s.endpointsPage)
	page("GET "+b+"/endpoints/new", s.newEndpointPage)
	page("POST "+b+"/endpoints/new", s.createEndpoint)
	page("GET "+b+"/endpoints/{id}", s.endpointPage)
	page("GET "+b+"/endpoints/{id}/edit", s.editEndpointPage)
	page("POST "+b+"/endpoints/{id}/edit", s.updateEndpoint)
	page("POST "+b+"/endpoints/{id}/{action}", s.endpointAction)
	page("GET "+b+"/deliveries", s.deliveriesPage)
	page("GET "+b+"/deliveries/rows", s.deliveryRows)
	page("GET "+b+"/deliveries/{id}", s.deliveryPage)
	page("GET "+b+"/deliveries/{id}/live", s.deliveryLive)
	page("POST "+b+"/deliveries/{id}/retry", s.retryDelivery)
	if b != "" {
		mux.Handle("GET "+b, http.RedirectHandler(b+"/", http.StatusMovedPermanently))
	}
	mux.Handle("/", s.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, http.StatusNotFound, "There is no such page.")
	})))
	return mux, nil
}

// headers sets the security headers of every answer.
func (s *server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
			"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// public serves pages that need no principal (sign-in), with CSRF checks on
// POST against the pre-session nonce cookie.
func (s *server) public(h func(http.ResponseWriter, *http.Request)) http.Handler {
	return s.headers(s.origin.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &reqState{}
		if sess, ok := s.readSession(r); ok {
			st.principal, st.signedIn, st.session = sess.principal(), true, true
			st.csrf = s.csrfToken(sess.Nonce, st.principal, true)
		} else {
			st.csrf = s.csrfToken(s.nonce(w, r), auth.Principal{}, false)
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, st))
		if r.Method == http.MethodPost && !s.csrfOK(r, st) {
			s.renderError(w, r, http.StatusForbidden, "The form expired or did not come from this dashboard. Go back, reload the page and try again.")
			return
		}
		h(w, r)
	})))
}

// private serves pages that need a principal.
func (s *server) private(h func(http.ResponseWriter, *http.Request)) http.Handler {
	return s.headers(s.origin.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &reqState{}
		switch s.opts.Mode {
		case config.AuthToken:
			sess, ok := s.readSession(r)
			if !ok {
				if r.Method == http.MethodGet && !isFragment(r) {
					http.Redirect(w, r, s.base+"/sign-in?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				s.renderError(w, r, http.StatusUnauthorized, "Your session has ended. Sign in again.")
				return
			}
			st.principal, st.session = sess.principal(), true
			st.csrf = s.csrfToken(sess.Nonce, st.principal, true)
		default:
			if s.opts.Auth == nil {
				s.renderError(w, r, http.StatusUnauthorized, "No authentication is configured.")
				return
			}
			p, err := s.opts.Auth.Authenticate(r)
			if err != nil {
				var ae *auth.Error
				if !errors.As(err, &ae) {
					ae = &auth.Error{Status: http.StatusUnauthorized}
				}
				msg := "Sign in to the application first, then come back to this page."
				switch ae.Status {
				case http.StatusForbidden:
					msg = "Your account may not manage webhooks."
				case http.StatusServiceUnavailable:
					msg = "The application could not say who you are right now. Try again in a moment."
				}
				s.renderError(w, r, ae.Status, msg)
				return
			}
			st.principal = p
			st.csrf = s.csrfToken(s.nonce(w, r), p, true)
		}
		st.signedIn = true
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, st))
		if r.Method == http.MethodPost && !s.csrfOK(r, st) {
			s.renderError(w, r, http.StatusForbidden, "The form expired or did not come from this dashboard. Go back, reload the page and try again.")
			return
		}
		h(w, r)
	})))
}

// isFragment reports whether r is a poll of app.js (answered with a bare
// status, never a redirect to a page).
func isFragment(r *http.Request) bool { return r.Header.Get("X-Walhook-Fragment") != "" }

// staticHandler serves the embedded files (not directory listings), to be
// revalidated on each use: they are small and change with the binary.
func staticHandler(files fs.FS) http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}
