// Package api serves walhook's management API (JSON over HTTP) under the
// configured prefix: endpoints and deliveries. Every request needs a bearer
// token from auth.tokens, compared in constant time; invalid input gets a 4xx
// with {"error": {"field", "message"}}.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/store"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Options configure the API.
type Options struct {
	Prefix  string // e.g. "/webhooks/"
	Tokens  []string
	Service *manage.Service
	Logger  *slog.Logger
}

type server struct {
	opts   Options
	tokens [][32]byte
	log    *slog.Logger
}

// Handler returns the API's handler; mount it at the root of listen.
func Handler(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{opts: opts, log: opts.Logger}
	for _, t := range opts.Tokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	base := strings.TrimSuffix(opts.Prefix, "/") + "/api"
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+base+"/endpoints", s.createEndpoint)
	mux.HandleFunc("GET "+base+"/endpoints", s.listEndpoints)
	mux.HandleFunc("GET "+base+"/endpoints/{id}", s.getEndpoint)
	mux.HandleFunc("GET "+base+"/deliveries", s.listDeliveries)
	mux.HandleFunc("GET "+base+"/deliveries/{id}", s.getDelivery)
	mux.HandleFunc(base+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such route")
	})
	return s.auth(mux)
}

// auth admits requests with a configured bearer token. Tokens are compared
// as SHA-256 digests so the comparison is constant-time whatever their length.
func (s *server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if ok {
			sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			match := 0
			for _, t := range s.tokens {
				match |= subtle.ConstantTimeCompare(sum[:], t[:])
			}
			ok = match == 1
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="walhook"`)
			writeError(w, http.StatusUnauthorized, "", "a valid bearer token is required (auth.tokens)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

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

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if fe, ok := manage.IsFieldError(err); ok {
		writeError(w, http.StatusBadRequest, fe.Field, fe.Message)
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "", "not found")
		return
	}
	s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "", "internal error")
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return &manage.FieldError{Field: "", Message: "request body larger than 1 MiB"}
		case errors.As(err, &typeErr):
			return &manage.FieldError{Field: typeErr.Field, Message: "must be " + typeErr.Type.String()}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &manage.FieldError{Field: f, Message: "unknown field"}
		}
		return &manage.FieldError{Field: "", Message: "body is not valid JSON: " + err.Error()}
	}
	return nil
}

func (s *server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	var in manage.EndpointInput
	if err := decode(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	ep, err := s.opts.Service.CreateEndpoint(r.Context(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ep)
}

func limitParam(r *http.Request, def, maxLimit int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, &manage.FieldError{Field: "limit", Message: "must be a number from 1 to " + strconv.Itoa(maxLimit)}
	}
	return n, nil
}

func (s *server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, 50, 250)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := store.EndpointFilter{After: r.URL.Query().Get("after"), Limit: limit}
	if t, ok := r.URL.Query()["tenant_id"]; ok {
		f.Tenant = &t[0]
	}
	eps, err := s.opts.Service.Store.ListEndpoints(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Data []manage.Endpoint `json:"data"`
		Next string            `json:"next,omitempty"`
	}{Data: []manage.Endpoint{}}
	for _, e := range eps {
		out.Data = append(out.Data, manage.EndpointView(e))
	}
	if len(eps) == limit {
		out.Next = eps[len(eps)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	e, err := s.opts.Service.Store.GetEndpoint(r.Context(), r.PathValue("id"), nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, manage.EndpointView(e))
}

func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, 50, 250)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.DeliveryFilter{EndpointID: q.Get("endpoint_id"), Limit: limit}
	if st := q.Get("status"); st != "" {
		switch store.Status(st) {
		case store.StatusPending, store.StatusDelivered, store.StatusRetrying, store.StatusFailed:
			f.Status = store.Status(st)
		default:
			s.fail(w, r, &manage.FieldError{Field: "status", Message: "must be pending, delivered, retrying or failed"})
			return
		}
	}
	ds, err := s.opts.Service.Store.ListDeliveries(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Data []manage.Delivery `json:"data"`
	}{Data: []manage.Delivery{}}
	for _, d := range ds {
		out.Data = append(out.Data, manage.DeliveryView(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := s.opts.Service.Store.GetDelivery(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	atts, err := s.opts.Service.Store.ListAttempts(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type attempt struct {
		Attempt    int     `json:"attempt"`
		StartedAt  string  `json:"started_at"`
		DurationMS float64 `json:"duration_ms"`
		StatusCode *int    `json:"status_code"`
		Response   string  `json:"response,omitempty"`
		Error      string  `json:"error,omitempty"`
	}
	out := struct {
		manage.Delivery
		AttemptLog []attempt `json:"attempt_log"`
	}{Delivery: manage.DeliveryView(d), AttemptLog: []attempt{}}
	for _, a := range atts {
		v := attempt{Attempt: a.Attempt, StartedAt: a.StartedAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
			DurationMS: float64(a.Duration.Microseconds()) / 1000, Response: a.Response, Error: a.Error}
		if a.StatusCode != 0 {
			c := a.StatusCode
			v.StatusCode = &c
		}
		out.AttemptLog = append(out.AttemptLog, v)
	}
	writeJSON(w, http.StatusOK, out)
}
