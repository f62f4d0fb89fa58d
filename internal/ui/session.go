package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/walhook/walhook/internal/auth"
	"github.com/walhook/walhook/internal/config"
)

// Cookies of the dashboard, all HttpOnly, SameSite=Strict, Path=prefix and
// Secure when the request came over TLS.
const (
	sessionCookie = "walhook_session" // mode token: the signed session
	nonceCookie   = "walhook_csrf"    // otherwise: a signed random nonce for CSRF tokens
	csrfField     = "csrf"
)

// session is the content of the session cookie. It holds who signed in and
// until when, never the token: the cookie is the HMAC-signed JSON of it.
type session struct {
	All     bool   `json:"a,omitempty"`
	Tenant  string `json:"t,omitempty"`
	Expires int64  `json:"e"`
	Nonce   string `json:"n"`
}

func (s session) principal() auth.Principal { return auth.Principal{All: s.All, Tenant: s.Tenant} }

// sign returns "<payload>.<mac>" (both base64url) of payload under purpose.
func (s *server) sign(purpose string, payload []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose + "\x00"))
	m.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify returns the payload of a value made by sign for purpose.
func (s *server) verify(purpose, v string) ([]byte, bool) {
	p64, mac64, ok := strings.Cut(v, ".")
	if !ok || len(v) > 4096 {
		return nil, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(mac64)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose + "\x00"))
	m.Write(payload)
	return payload, hmac.Equal(mac, m.Sum(nil))
}

func randomString() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *server) cookie(r *http.Request, name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: s.base + "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")}
	switch {
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	case maxAge < 0:
		c.MaxAge = -1
	}
	return c
}

// readSession returns the request's valid, unexpired session (mode token).
func (s *server) readSession(r *http.Request) (session, bool) {
	if s.opts.Mode != config.AuthToken {
		return session{}, false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	raw, ok := s.verify("session", c.Value)
	if !ok {
		return session{}, false
	}
	var sess session
	if json.Unmarshal(raw, &sess) != nil || sess.Nonce == "" || s.now().Unix() >= sess.Expires || (sess.All && sess.Tenant != "") {
		return session{}, false
	}
	return sess, true
}

// startSession signs p in.
func (s *server) startSession(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	sess := session{All: p.All, Tenant: p.Tenant, Expires: s.now().Add(s.opts.SessionTTL).Unix(), Nonce: randomString()}
	raw, _ := json.Marshal(sess)
	http.SetCookie(w, s.cookie(r, sessionCookie, s.sign("session", raw), s.opts.SessionTTL))
}

// nonce returns the request's CSRF nonce cookie, setting a new one when it
// has none (or a forged one).
func (s *server) nonce(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(nonceCookie); err == nil {
		if raw, ok := s.verify("nonce", c.Value); ok {
			return string(raw)
		}
	}
	n := randomString()
	http.SetCookie(w, s.cookie(r, nonceCookie, s.sign("nonce", []byte(n)), 0))
	return n
}

// csrfToken binds a nonce to the principal (or to nobody, before sign-in).
func (s *server) csrfToken(nonce string, p auth.Principal, signedIn bool) string {
	who := "-"
	switch {
	case signedIn && p.All:
		who = "*"
	case signedIn:
		who = "t:" + p.Tenant
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("csrf\x00" + nonce + "\x00" + who))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK checks the form's token in constant time.
func (s *server) csrfOK(r *http.Request, st *reqState) bool {
	r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return false
	}
	got := r.PostForm.Get(csrfField)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(st.csrf)) == 1
}

// maxForm bounds form bodies.
const maxForm = 1 << 20

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// safeNext is the page to go to after signing in: a path of this dashboard,
// never another site.
func (s *server) safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, s.base+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") ||
		strings.HasPrefix(next, s.base+"/sign-") {
		return s.base + "/"
	}
	return next
}

func (s *server) signInPage(w http.ResponseWriter, r *http.Request) {
	if s.opts.Mode != config.AuthToken || state(r).signedIn {
		http.Redirect(w, r, s.base+"/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "signin", "Sign in", signInView{Next: s.safeNext(r.URL.Query().Get("next"))})
}

type signInView struct {
	Next  string
	Error string
}

func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	if s.opts.Mode != config.AuthToken || s.opts.Auth == nil {
		http.Redirect(w, r, s.base+"/", http.StatusSeeOther)
		return
	}
	next := s.safeNext(r.PostForm.Get("next"))
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	probe, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "/", nil)
	probe.Header.Set("Authorization", "Bearer "+tok)
	p, err := s.opts.Auth.Authenticate(probe)
	if tok == "" || err != nil {
		s.render(w, r, formErrorStatus, "signin", "Sign in", signInView{Next: next, Error: "That token is not valid."})
		return
	}
	s.startSession(w, r, p)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *server) signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, s.cookie(r, sessionCookie, "", -1))
	if s.opts.Mode == config.AuthToken {
		http.Redirect(w, r, s.base+"/sign-in", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, s.base+"/", http.StatusSeeOther)
}
