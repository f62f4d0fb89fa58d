package api

import (
	"net/http"

	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/store"
)

var statuses = []string{string(store.StatusPending), string(store.StatusDelivered), string(store.StatusRetrying), string(store.StatusFailed)}

func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	p, err := readList(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.DeliveryFilter{Tenant: p.tenant, EndpointID: q.Get("endpoint_id"), EventID: q.Get("event_id"), EventType: q.Get("event_type"),
		Since: p.since, Until: p.until, Before: p.before, Limit: p.limit + 1}
	if st := q.Get("status"); st != "" {
		switch store.Status(st) {
		case store.StatusPending, store.StatusDelivered, store.StatusRetrying, store.StatusFailed:
			f.Status = store.Status(st)
		default:
			s.fail(w, r, badRequest("status", "must be "+allowed(statuses...)))
			return
		}
	}
	var ds []*store.Delivery
	if !p.empty {
		if ds, err = s.opts.Service.Store.ListDeliveries(r.Context(), f); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, paginate(ds, p.limit,
		func(d *store.Delivery) store.PageKey { return store.PageKey{CreatedAt: d.CreatedAt, ID: d.ID} },
		manage.DeliveryView))
}

func (s *server) getDelivery(w http.ResponseWriter, r *http.Request) {
	serveObject(s, w, r, http.StatusOK, false, s.opts.Service.GetDelivery)
}

func (s *server) retryDelivery(w http.ResponseWriter, r *http.Request) {
	serveObject(s, w, r, http.StatusAccepted, true, s.opts.Service.RetryDelivery)
}
