// Package api serves walhook's management API, JSON over HTTP under
// <api.prefix>api/: endpoints (create, list, get, update, delete, rotate
// the secret, send a test event, recover failed deliveries), deliveries
// (list, get with attempts, retry), events (list, get with payload and
// fan-out) and the event type catalogue, described by the OpenAPI document
// served at <api.prefix>api/openapi.json (openapi.json here, embedded; a
// test keeps it and the routes in step).
//
// Invariants:
//   - Every route but the OpenAPI document authenticates first (package
//     auth); the principal's tenant scopes every query, and another tenant's
//     object answers 404 exactly like an unknown id.
//   - Errors are {"error": {"field", "message"}}: 400 for a malformed
//     request (not JSON, wrong type, unknown field, bad query parameter), 422
//     for invalid values, 404, 409, 413 (bodies over 1 MiB), 401/403/503 from
//     auth; 500s are logged and say nothing more.
//   - No response, error or log line carries a secret or credential, except
//     the secret returned once by create and rotate-secret.
//   - Times are RFC 3339 in UTC; lists are newest first with an opaque
//     "next" cursor.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/walhook/walhook/internal/auth"
	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/store"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Options configure the API.
type Options struct {
	Prefix  string // e.g. "/webhooks/"
	Auth    auth.Authenticator
	Service *manage.Service
	Logger  *slog.Logger
}

type server struct {
	opts    Options
	log     *slog.Logger
	openapi []byte
}

// route is one operation; path is relative to the API's base.
type route struct {
	method, path string
	handle       func(*server, http.ResponseWriter, *http.Request)
	public       bool // served without authentication
}

// routes is every operation of the API. openapi.json must describe exactly
// these (TestOpenAPIDescribesEveryRoute).
var routes = []route{
	{"GET", "/openapi.json", (*server).serveOpenAPI, true},
	{"POST", "/endpoints", (*server).createEndpoint, false},
	{"GET", "/endpoints", (*server).listEndpoints, false},
	{"GET", "/endpoints/{id}", (*server).getEndpoint, false},
	{"PATCH", "/endpoints/{id}", (*server).updateEndpoint, false},
	{"DELETE", "/endpoints/{id}", (*server).deleteEndpoint, false},
	{"POST", "/endpoints/{id}/rotate-secret", (*server).rotateSecret, false},
	{"POST", "/endpoints/{id}/test", (*server).testEndpoint, false},
	{"POST", "/endpoints/{id}/recover", (*server).recoverEndpoint, false},
	{"GET", "/deliveries", (*server).listDeliveries, false},
	{"GET", "/deliveries/{id}", (*server).getDelivery, false},
	{"POST", "/deliveries/{id}/retry", (*server).retryDelivery, false},
	{"GET", "/events", (*server).listEvents, false},
	{"GET", "/events/{id}", (*server).getEvent, false},
	{"GET", "/event-types", (*server).listEventTypes, false},
}

// serveObject serves an operation on one object: its id from the path, an
// empty JSON body (emptyBody: one may be sent, and must be {}), then what
// call returns, as JSON with status; errors go through fail.
func serveObject[T any](s *server, w http.ResponseWriter, r *http.Request, status int, emptyBody bool,
	call func(ctx context.Context, id string, tenant *string) (T, error)) {
	id, err := pathID(r)
	if err == nil && emptyBody {
		err = decode(w, r, &struct{}{}, true)
	}
	var v T
	if err == nil {
		v, err = call(r.Context(), id, scope(r))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

// Routes lists the API's operations as "METHOD /path", the path relative to
// <api.prefix>api.
func Routes() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.method + " " + rt.path
	}
	return out
}

// Base is the path under which the API's routes live for a prefix.
func Base(prefix string) string { return strings.TrimSuffix(prefix, "/") + "/api" }

// Handler returns the API's handler; mount it at the root of listen.
func Handler(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	base := Base(opts.Prefix)
	s := &server{opts: opts, log: opts.Logger, openapi: openAPIFor(base)}
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range routes {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
		if rt.public {
			mux.Handle(rt.method+" "+base+rt.path, h)
		} else {
			mux.Handle(rt.method+" "+base+rt.path, s.authenticate(h))
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// Known paths with another method: 405 in JSON, after authentication.
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.Handle(base+path, s.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "", "method "+r.Method+" not allowed here; use "+allow)
		})))
	}
	mux.Handle(base+"/", s.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such route")
	})))
	return mux
}

type principalKey struct{}

// authenticate admits requests the authenticator accepts, with their
// principal in the context.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Auth == nil {
			writeError(w, http.StatusUnauthorized, "", "no authentication is configured")
			return
		}
		p, err := s.opts.Auth.Authenticate(r)
		if err != nil {
			var ae *auth.Error
			if !errors.As(err, &ae) {
				ae = &auth.Error{Status: http.StatusUnauthorized, Message: "not authenticated"}
			}
			if ae.Challenge != "" {
				w.Header().Set("WWW-Authenticate", ae.Challenge)
			}
			writeError(w, ae.Status, "", ae.Message)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// principal is the authenticated caller (admin when unset, which only the
// public routes see).
func principal(r *http.Request) auth.Principal {
	p, ok := r.Context().Value(principalKey{}).(auth.Principal)
	if !ok {
		return auth.Principal{}
	}
	return p
}

// scope is the tenant filter of the caller: nil for admins.
func scope(r *http.Request) *string { return principal(r).Scope() }

type errorBody struct {
	Error manage.FieldError `json:"error"`
}

func writeError(w http.ResponseWriter, code int, field, msg string) {
	writeJSON(w, code, errorBody{Error: manage.FieldError{Field: field, Message: msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// requestError is a malformed request (400) or too large a body (413).
type requestError struct {
	status int
	manage.FieldError
}

func badRequest(field, msg string) error {
	return &requestError{status: http.StatusBadRequest, FieldError: manage.FieldError{Field: field, Message: msg}}
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var re *requestError
	if errors.As(err, &re) {
		writeError(w, re.status, re.Field, re.Message)
		return
	}
	if fe, ok := manage.IsFieldError(err); ok {
		writeError(w, http.StatusUnprocessableEntity, fe.Field, fe.Message)
		return
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "", "not found")
		return
	case errors.Is(err, store.ErrPending):
		writeError(w, http.StatusConflict, "", store.ErrPending.Error())
		return
	case errors.Is(err, manage.ErrNoSender), errors.Is(err, delivery.ErrStopped):
		writeError(w, http.StatusServiceUnavailable, "", "walhook is not sending right now (starting or stopping)")
		return
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the caller went away
	}
	s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "", "internal error")
}

// decode reads a JSON body into v, refusing unknown fields and bodies over
// maxBody. With optional, an empty body leaves v as it is.
func decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return badRequest("", "body must be one JSON object")
		}
		return nil
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case optional && errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooBig):
		return &requestError{status: http.StatusRequestEntityTooLarge, FieldError: manage.FieldError{Message: "request body larger than 1 MiB"}}
	case errors.As(err, &typeErr):
		return badRequest(typeErr.Field, "must be "+jsonType(typeErr.Type.String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(f, "unknown field")
	}
	return badRequest("", "body is not valid JSON: "+err.Error())
}

// jsonType names a Go type the way a JSON client thinks of it.
func jsonType(goType string) string {
	goType = strings.TrimLeft(goType, "*")
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"), strings.Contains(goType, "."):
		return "an object"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return goType
}

// limitParam reads ?limit= (default def, at most maxLimit).
func limitParam(r *http.Request, def, maxLimit int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, badRequest("limit", "must be a number from 1 to "+strconv.Itoa(maxLimit))
	}
	return n, nil
}

// Page sizes of every list (as the seeds' delivery log: 50 by default).
const (
	defaultLimit = 50
	maxLimit     = 250
)

// page is the body of every list.
type page[T any] struct {
	Data []T `json:"data"`
	// Next, when set, is the cursor of the following page.
	Next string `json:"next,omitempty"`
}

// paginate trims rows read with limit+1 to limit and makes the cursor of
// the next page when there is one.
func paginate[R, T any](rows []R, limit int, key func(R) store.PageKey, view func(R) T) page[T] {
	out := page[T]{Data: make([]T, 0, min(len(rows), limit))}
	for i, row := range rows {
		if i == limit {
			out.Next = encodeCursor(key(rows[limit-1]))
			break
		}
		out.Data = append(out.Data, view(row))
	}
	return out
}

// tenantFilter is the tenant a list shows: ?tenant_id= for admins (nil:
// all), always the caller's own tenant otherwise. ok is false when a
// tenant-bound caller asks for another tenant: the list is empty.
func tenantFilter(r *http.Request) (tenant *string, ok bool) {
	q, asked := r.URL.Query()["tenant_id"]
	if sc := scope(r); sc != nil {
		return sc, !asked || q[0] == *sc
	}
	if asked {
		return &q[0], true
	}
	return nil, true
}

// listParams are the parameters every list shares.
type listParams struct {
	limit  int
	before *store.PageKey // ?cursor=
	tenant *string        // nil: every tenant
	// empty: a tenant-bound caller asked for another tenant's objects.
	empty bool
	// ?since= (inclusive) and ?until= (exclusive): RFC 3339 times or
	// durations ago ("2h").
	since, until time.Time
}

func readList(r *http.Request) (listParams, error) {
	var p listParams
	var err error
	if p.limit, err = limitParam(r, defaultLimit, maxLimit); err != nil {
		return p, err
	}
	q := r.URL.Query()
	if c := q.Get("cursor"); c != "" {
		k, err := decodeCursor(c)
		if err != nil {
			return p, badRequest("cursor", "is not a cursor returned by this API")
		}
		p.before = &k
	}
	var ok bool
	p.tenant, ok = tenantFilter(r)
	p.empty = !ok
	now := time.Now()
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &p.since}, {"until", &p.until}} {
		if v := q.Get(f.name); v != "" {
			t, err := manage.ParseSince(v, now)
			if err != nil {
				return p, badRequest(f.name, err.Error())
			}
			*f.dst = t
		}
	}
	return p, nil
}

// pathID is the {id} of the route, bounded so that a silly id costs nothing.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 100 {
		return "", store.ErrNotFound
	}
	return id, nil
}

// allowed lists the values of an enumerated parameter for error messages.
func allowed(vs ...string) string {
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}
