package api

import (
	"context"
	"net/http"
	"time"

	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/store"
)

func (s *server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	var in manage.EndpointInput
	if err := decode(w, r, &in, false); err != nil {
		s.fail(w, r, err)
		return
	}
	if sc := scope(r); sc != nil {
		// A tenant creates endpoints for itself only.
		if in.TenantID != "" && in.TenantID != *sc {
			s.fail(w, r, &manage.FieldError{Field: "tenant_id", Message: "must be empty or your own tenant"})
			return
		}
		in.TenantID = *sc
	}
	ep, err := s.opts.Service.CreateEndpoint(r.Context(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ep)
}

func (s *server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	p, err := readList(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var eps []*store.Endpoint
	if !p.empty {
		eps, err = s.opts.Service.Store.PageEndpoints(r.Context(), store.EndpointPage{Tenant: p.tenant, Before: p.before, Limit: p.limit + 1})
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, paginate(eps, p.limit,
		func(e *store.Endpoint) store.PageKey { return store.PageKey{CreatedAt: e.CreatedAt, ID: e.ID} },
		manage.EndpointView))
}

func (s *server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	serveObject(s, w, r, http.StatusOK, false, func(ctx context.Context, id string, tenant *string) (manage.Endpoint, error) {
		e, err := s.opts.Service.Store.GetEndpoint(ctx, id, tenant)
		if err != nil {
			return manage.Endpoint{}, err
		}
		return manage.EndpointView(e), nil
	})
}

func (s *server) updateEndpoint(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var patch manage.EndpointPatch
	if err := decode(w, r, &patch, false); err != nil {
		s.fail(w, r, err)
		return
	}
	ep, err := s.opts.Service.UpdateEndpoint(r.Context(), id, scope(r), patch)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

func (s *server) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.opts.Service.DeleteEndpoint(r.Context(), id, scope(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		// Overlap is how long the old secret keeps signing (Go duration).
		Overlap *string `json:"overlap"`
	}
	if err := decode(w, r, &in, true); err != nil {
		s.fail(w, r, err)
		return
	}
	var overlap *time.Duration
	if in.Overlap != nil {
		d, err := time.ParseDuration(*in.Overlap)
		if err != nil {
			s.fail(w, r, &manage.FieldError{Field: "overlap", Message: "must be a duration like 0s, 30m or 24h"})
			return
		}
		overlap = &d
	}
	ep, err := s.opts.Service.RotateSecret(r.Context(), id, scope(r), overlap)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

func (s *server) testEndpoint(w http.ResponseWriter, r *http.Request) {
	serveObject(s, w, r, http.StatusOK, true, s.opts.Service.TestEndpoint)
}

func (s *server) recoverEndpoint(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := r.URL.Query().Get("since")
	if v == "" {
		s.fail(w, r, badRequest("since", "is required: a duration ago (2h) or an RFC 3339 time"))
		return
	}
	since, err := manage.ParseSince(v, time.Now())
	if err != nil {
		s.fail(w, r, badRequest("since", err.Error()))
		return
	}
	n, err := s.opts.Service.RecoverEndpoint(r.Context(), id, scope(r), since)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		EndpointID string    `json:"endpoint_id"`
		Since      time.Time `json:"since"`
		Requeued   int       `json:"requeued"`
	}{id, since.UTC(), n})
}
