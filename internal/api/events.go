package api

import (
	"net/http"

	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/store"
)

func (s *server) listEvents(w http.ResponseWriter, r *http.Request) {
	p, err := readList(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var evs []*store.Event
	if !p.empty {
		evs, err = s.opts.Service.Store.ListEvents(r.Context(), store.EventFilter{Tenant: p.tenant, EventType: r.URL.Query().Get("event_type"),
			Since: p.since, Until: p.until, Before: p.before, Limit: p.limit + 1})
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, paginate(evs, p.limit,
		func(e *store.Event) store.PageKey { return store.PageKey{CreatedAt: e.CreatedAt, ID: e.ID} },
		manage.EventView))
}

func (s *server) getEvent(w http.ResponseWriter, r *http.Request) {
	serveObject(s, w, r, http.StatusOK, false, s.opts.Service.GetEvent)
}

func (s *server) listEventTypes(w http.ResponseWriter, r *http.Request) {
	ts, err := s.opts.Service.EventTypes(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page[manage.EventType]{Data: ts})
}
