package ui

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/store"
)

// Page sizes.
const (
	endpointsPerPage  = 50
	deliveriesPerPage = 50
	recentDeliveries  = 10
	maxEndpointNames  = 1000 // endpoints offered in the filter and named in tables
)

// fail answers an error of the service layer.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "There is no such endpoint or delivery here.")
	case errors.Is(err, store.ErrPending):
		s.renderError(w, r, http.StatusConflict, "An attempt is under way; try again when it has finished.")
	case errors.Is(err, manage.ErrNoSender), errors.Is(err, delivery.ErrStopped):
		s.renderError(w, r, http.StatusServiceUnavailable, "walhook is not sending right now (starting or stopping).")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
	default:
		if fe, ok := manage.IsFieldError(err); ok {
			s.renderError(w, r, http.StatusUnprocessableEntity, fe.Field+" "+fe.Message)
			return
		}
		s.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		s.renderError(w, r, http.StatusInternalServerError, "Something went wrong; it has been logged.")
	}
}

// pathID is the {id} of the route, bounded.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 100 {
		return "", store.ErrNotFound
	}
	return id, nil
}

// Cursors: base64url of "<created_at unix µs>.<id>", as the API's.
func encodeCursor(k store.PageKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.CreatedAt.UnixMicro(), 10) + "." + k.ID))
}

func decodeCursor(c string) *store.PageKey {
	if c == "" {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil
	}
	us, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || id == "" || len(id) > 100 {
		return nil
	}
	return &store.PageKey{CreatedAt: time.UnixMicro(n).UTC(), ID: id}
}

// ---- endpoints ----

// endpointRow is an endpoint as lists and the detail page show it.
type endpointRow struct {
	manage.Endpoint
	StateLabel, StateClass string
	// Rate is the delivered share of the last 24 h's attempted deliveries
	// ("" when there were none), Counted how many that was.
	Rate         string
	Counted      int
	Bars         []bar
	LastDelivery time.Time
}

// bar is one hour of the sparkline (SVG units; 24 bars of 4 in a 96×24 box).
type bar struct {
	X                  int
	OKY, OKH           int
	BadY, BadH         int
	PendY, PendH       int
	Label              string
	Delivered, Problem int
}

const sparkHeight = 22

func (s *server) endpointRows(ctx context.Context, eps []manage.Endpoint) ([]endpointRow, error) {
	ids := make([]string, len(eps))
	for i, e := range eps {
		ids[i] = e.ID
	}
	act, err := s.opts.Service.Store.EndpointActivity(ctx, ids, s.now())
	if err != nil {
		return nil, err
	}
	var circuits map[string]string
	if s.opts.Circuits != nil {
		circuits = s.opts.Circuits()
	}
	rows := make([]endpointRow, len(eps))
	for i, e := range eps {
		row := endpointRow{Endpoint: e}
		switch {
		case e.State == "disabled":
			row.StateLabel, row.StateClass = "disabled", "state state-disabled"
		case e.State == "paused":
			row.StateLabel, row.StateClass = "paused", "state state-paused"
		case circuits[e.ID] != "":
			row.StateLabel, row.StateClass = "circuit "+strings.ReplaceAll(circuits[e.ID], "_", "-"), "state state-circuit"
		default:
			row.StateLabel, row.StateClass = "active", "state state-active"
		}
		a := act[e.ID]
		if a == nil {
			a = &store.Activity{}
		}
		row.LastDelivery = a.LastDeliveryAt
		most, delivered, problems := 0, 0, 0
		for _, h := range a.Hours {
			most = max(most, h.Delivered+h.Failed+h.Retrying+h.Pending)
			delivered += h.Delivered
			problems += h.Failed + h.Retrying
		}
		if row.Counted = delivered + problems; row.Counted > 0 {
			row.Rate = strconv.FormatFloat(math.Floor(float64(delivered)*1000/float64(row.Counted))/10, 'f', -1, 64) + " %"
		}
		scale := func(n int) int {
			if n == 0 || most == 0 {
				return 0
			}
			return max(1, int(math.Round(float64(n)*sparkHeight/float64(most))))
		}
		for hi, h := range a.Hours {
			b := bar{X: hi * 4, Delivered: h.Delivered, Problem: h.Failed + h.Retrying}
			b.OKH, b.BadH, b.PendH = scale(h.Delivered), scale(h.Failed+h.Retrying), scale(h.Pending)
			b.OKY = 24 - b.OKH
			b.BadY = b.OKY - b.BadH
			b.PendY = b.BadY - b.PendH
			ago := store.ActivityHours - hi
			b.Label = strconv.Itoa(ago) + "–" + strconv.Itoa(ago-1) + " h ago: " + strconv.Itoa(h.Delivered) + " delivered, " +
				strconv.Itoa(h.Failed+h.Retrying) + " failed or retrying, " + strconv.Itoa(h.Pending) + " pending"
			row.Bars = append(row.Bars, b)
		}
		rows[i] = row
	}
	return rows, nil
}

type endpointsView struct {
	Endpoints []endpointRow
	Next      string // URL of the next page
	First     bool
	Recent    deliveriesTable
}

func (s *server) endpointsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	before := decodeCursor(r.URL.Query().Get("cursor"))
	eps, err := s.opts.Service.Store.PageEndpoints(ctx, store.EndpointPage{Tenant: scope(r), Before: before, Limit: endpointsPerPage + 1})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := endpointsView{First: before == nil}
	if len(eps) > endpointsPerPage {
		last := eps[endpointsPerPage-1]
		v.Next = s.base + "/?cursor=" + encodeCursor(store.PageKey{CreatedAt: last.CreatedAt, ID: last.ID})
		eps = eps[:endpointsPerPage]
	}
	views := make([]manage.Endpoint, len(eps))
	for i, e := range eps {
		views[i] = manage.EndpointView(e)
	}
	if v.Endpoints, err = s.endpointRows(ctx, views); err != nil {
		s.fail(w, r, err)
		return
	}
	if v.Recent, err = s.deliveryTable(r, deliveryQuery{limit: recentDeliveries}, false); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "endpoints", "Endpoints", v)
}

type endpointView struct {
	endpointRow
	Deliveries deliveriesTable
	Filter     deliveryQuery
	Statuses   []string
	Since      string
}

func (s *server) endpointPage(w http.ResponseWriter, r *http.Request) {
	e, ok := s.endpointOf(w, r)
	if !ok {
		return
	}
	rows, err := s.endpointRows(r.Context(), []manage.Endpoint{manage.EndpointView(e)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := readDeliveryQuery(r)
	q.EndpointID = e.ID
	v := endpointView{endpointRow: rows[0], Filter: q, Statuses: statuses, Since: "24h"}
	if v.Deliveries, err = s.deliveryTable(r, q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "endpoint", e.URL, v)
}

// ---- add / edit ----

type catalogueItem struct {
	Name    string
	Checked bool
}

type endpointForm struct {
	Editing     bool
	ID          string
	URL         string
	Description string
	Catalogue   []catalogueItem
	Patterns    string
	Headers     string
	RateLimit   string
	TenantID    string
	ShowTenant  bool
	Errors      map[string]string
	General     string
}

// formFields are the fields errors can be shown beside.
var formFields = map[string]bool{"url": true, "description": true, "events": true, "headers": true, "rate_limit": true, "tenant_id": true}

func (f *endpointForm) setError(err *manage.FieldError) {
	field, _, _ := strings.Cut(err.Field, "[")
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	if formFields[field] {
		msg := err.Message
		if field == "events" && err.Field != "events" {
			msg = "pattern " + strings.TrimPrefix(err.Field, "events") + ": " + msg
		}
		f.Errors[field] = msg
		return
	}
	f.General = err.Field + " " + err.Message
}

// catalogue returns the event types to offer, with events checked; events
// not in the catalogue are returned as the rest.
func (s *server) catalogue(ctx context.Context, events []string) ([]catalogueItem, []string, error) {
	ts, err := s.opts.Service.EventTypes(ctx)
	if err != nil {
		return nil, nil, err
	}
	var items []catalogueItem
	known := map[string]bool{}
	for _, t := range ts {
		known[t.Name] = true
		items = append(items, catalogueItem{Name: t.Name, Checked: contains(events, t.Name)})
	}
	var rest []string
	for _, e := range events {
		if !known[e] {
			rest = append(rest, e)
		}
	}
	return items, rest, nil
}

func (s *server) newEndpointPage(w http.ResponseWriter, r *http.Request) {
	items, _, err := s.catalogue(r.Context(), nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := endpointForm{Catalogue: items, ShowTenant: state(r).principal.All}
	if len(items) == 0 {
		f.Patterns = "*"
	}
	s.render(w, r, http.StatusOK, "endpoint_form", "Add endpoint", f)
}

// readForm reads the endpoint form into the form's echo and the input.
func (s *server) readForm(r *http.Request, f *endpointForm) (manage.EndpointInput, bool) {
	pf := r.PostForm
	f.URL, f.Description = strings.TrimSpace(pf.Get("url")), pf.Get("description")
	f.Patterns, f.Headers, f.RateLimit = pf.Get("patterns"), pf.Get("headers"), strings.TrimSpace(pf.Get("rate_limit"))
	f.TenantID = strings.TrimSpace(pf.Get("tenant_id"))
	in := manage.EndpointInput{URL: f.URL, Description: f.Description, Headers: map[string]string{}}
	checked := pf["events"]
	for i := range f.Catalogue {
		f.Catalogue[i].Checked = contains(checked, f.Catalogue[i].Name)
	}
	in.Events = append(in.Events, checked...)
	in.Events = append(in.Events, strings.FieldsFunc(f.Patterns, func(c rune) bool { return c == ',' || c == '\n' || c == '\r' || c == ' ' || c == '\t' })...)
	ok := true
	if len(in.Events) == 0 {
		f.setError(&manage.FieldError{Field: "events", Message: "pick at least one event type or type a pattern"})
		ok = false
	}
	for n, line := range strings.Split(f.Headers, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, found := strings.Cut(line, ":")
		if !found || strings.TrimSpace(k) == "" {
			f.setError(&manage.FieldError{Field: "headers", Message: "line " + strconv.Itoa(n+1) + " must be Name: value"})
			ok = false
			continue
		}
		in.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if f.RateLimit != "" {
		n, err := strconv.Atoi(f.RateLimit)
		if err != nil || n < 0 {
			f.setError(&manage.FieldError{Field: "rate_limit", Message: "must be a whole number of requests per second (empty or 0: unlimited)"})
			ok = false
		}
		in.RateLimit = n
	}
	return in, ok
}

func (s *server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	items, _, err := s.catalogue(r.Context(), nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := state(r).principal
	f := endpointForm{Catalogue: items, ShowTenant: p.All}
	in, ok := s.readForm(r, &f)
	if sc := p.Scope(); sc != nil {
		in.TenantID = *sc // a tenant creates endpoints for itself only
	} else {
		in.TenantID = f.TenantID
	}
	if !ok {
		s.render(w, r, formErrorStatus, "endpoint_form", "Add endpoint", f)
		return
	}
	ep, err := s.opts.Service.CreateEndpoint(r.Context(), in)
	if fe, isField := manage.IsFieldError(err); isField {
		f.setError(fe)
		s.render(w, r, formErrorStatus, "endpoint_form", "Add endpoint", f)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	secret := ep.Secret
	ep.Secret = ""
	s.render(w, r, http.StatusCreated, "secret", "Endpoint created", secretView{Endpoint: ep, Secret: secret})
}

type secretView struct {
	Endpoint manage.Endpoint
	Secret   string
	Rotated  bool
}

func (s *server) editEndpointPage(w http.ResponseWriter, r *http.Request) {
	e, ok := s.endpointOf(w, r)
	if !ok {
		return
	}
	items, rest, err := s.catalogue(r.Context(), e.EventTypes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := endpointForm{Editing: true, ID: e.ID, URL: e.URL, Description: e.Description, Catalogue: items,
		Patterns: strings.Join(rest, "\n"), TenantID: e.TenantID}
	var hs []string
	for k, v := range e.Headers {
		hs = append(hs, k+": "+v)
	}
	slices.Sort(hs)
	f.Headers = strings.Join(hs, "\n")
	if e.RateLimit > 0 {
		f.RateLimit = strconv.Itoa(e.RateLimit)
	}
	s.render(w, r, http.StatusOK, "endpoint_form", "Edit endpoint", f)
}

func (s *server) updateEndpoint(w http.ResponseWriter, r *http.Request) {
	e, ok := s.endpointOf(w, r)
	if !ok {
		return
	}
	items, _, err := s.catalogue(r.Context(), nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := endpointForm{Editing: true, ID: e.ID, Catalogue: items}
	in, ok := s.readForm(r, &f)
	f.TenantID = e.TenantID
	if !ok {
		s.render(w, r, formErrorStatus, "endpoint_form", "Edit endpoint", f)
		return
	}
	_, err = s.opts.Service.UpdateEndpoint(r.Context(), e.ID, scope(r), manage.EndpointPatch{URL: &in.URL, Description: &in.Description,
		Events: &in.Events, Headers: &in.Headers, RateLimit: &in.RateLimit})
	if fe, isField := manage.IsFieldError(err); isField {
		f.setError(fe)
		s.render(w, r, formErrorStatus, "endpoint_form", "Edit endpoint", f)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, s.base+"/endpoints/"+url.PathEscape(e.ID)+"?notice=updated", http.StatusSeeOther)
}

// endpointAction performs the buttons of the endpoint page.
func (s *server) endpointAction(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, sc := r.Context(), scope(r)
	back := s.base + "/endpoints/" + url.PathEscape(id)
	svc := s.opts.Service
	switch r.PathValue("action") {
	case "test":
		if _, err := svc.Store.GetEndpoint(ctx, id, sc); err != nil {
			s.fail(w, r, err)
			return
		}
		res, err := svc.TestEndpoint(ctx, id, sc)
		if errors.Is(err, manage.ErrNoSender) || errors.Is(err, delivery.ErrStopped) {
			http.Redirect(w, r, back+"?notice=not-sending", http.StatusSeeOther)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, s.base+"/deliveries/"+url.PathEscape(res.Delivery.ID)+"?notice=test", http.StatusSeeOther)
	case "rotate-secret":
		var overlap *time.Duration
		if r.PostForm.Get("overlap") == "0s" {
			zero := time.Duration(0)
			overlap = &zero
		}
		ep, err := svc.RotateSecret(ctx, id, sc, overlap)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		secret := ep.Secret
		ep.Secret = ""
		s.render(w, r, http.StatusOK, "secret", "Secret rotated", secretView{Endpoint: ep, Secret: secret, Rotated: true})
	case "pause", "resume":
		active := r.PathValue("action") == "resume"
		if _, err := svc.SetEndpointActive(ctx, id, sc, active); err != nil {
			s.fail(w, r, err)
			return
		}
		n := "paused"
		if active {
			n = "resumed"
		}
		http.Redirect(w, r, back+"?notice="+n, http.StatusSeeOther)
	case "recover":
		since, err := manage.ParseSince(strings.TrimSpace(r.PostForm.Get("since")), s.now())
		if err != nil {
			if _, err := svc.Store.GetEndpoint(ctx, id, sc); err != nil {
				s.fail(w, r, err)
				return
			}
			http.Redirect(w, r, back+"?notice=since-invalid", http.StatusSeeOther)
			return
		}
		n, err := svc.RecoverEndpoint(ctx, id, sc, since)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, back+"?notice=recovered&n="+strconv.Itoa(n), http.StatusSeeOther)
	case "delete":
		if err := svc.DeleteEndpoint(ctx, id, sc); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, s.base+"/?notice=deleted", http.StatusSeeOther)
	default:
		s.renderError(w, r, http.StatusNotFound, "There is no such action.")
	}
}

// ---- deliveries ----

var statuses = []string{string(store.StatusPending), string(store.StatusRetrying), string(store.StatusDelivered), string(store.StatusFailed)}

// deliveryQuery is a delivery list's filter.
type deliveryQuery struct {
	EndpointID, Status, EventType string
	Cursor                        string
	limit                         int
}

func readDeliveryQuery(r *http.Request) deliveryQuery {
	q := r.URL.Query()
	d := deliveryQuery{EndpointID: q.Get("endpoint_id"), EventType: strings.TrimSpace(q.Get("event_type")), Cursor: q.Get("cursor")}
	if contains(statuses, q.Get("status")) {
		d.Status = q.Get("status")
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= deliveriesPerPage {
		d.limit = n
	}
	if len(d.EndpointID) > 100 || len(d.EventType) > 200 {
		d.EndpointID, d.EventType = "", ""
	}
	return d
}

// values is the query string of the filter (without cursor).
func (q deliveryQuery) values() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"endpoint_id": q.EndpointID, "status": q.Status, "event_type": q.EventType} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if q.limit > 0 {
		v.Set("limit", strconv.Itoa(q.limit))
	}
	return v
}

type deliveryRow struct {
	manage.Delivery
	EndpointURL string // empty: deleted
}

type deliveriesTable struct {
	Base string
	Rows []deliveryRow
	// Live is the fragment URL app.js polls (first pages only).
	Live string
	// Next is the URL of the following (older) page; Newest of the first.
	Next, Newest string
	Filtered     bool
}

// deliveryTable reads a page of deliveries. paged: offer the next page
// (else it is a fixed "recent" list).
func (s *server) deliveryTable(r *http.Request, q deliveryQuery, paged bool) (deliveriesTable, error) {
	ctx := r.Context()
	limit := deliveriesPerPage
	if q.limit > 0 {
		limit = q.limit
	}
	before := decodeCursor(q.Cursor)
	ds, err := s.opts.Service.Store.ListDeliveries(ctx, store.DeliveryFilter{Tenant: scope(r), EndpointID: q.EndpointID,
		Status: store.Status(q.Status), EventType: q.EventType, Before: before, Limit: limit + 1})
	if err != nil {
		return deliveriesTable{}, err
	}
	names, err := s.endpointNames(ctx, scope(r))
	if err != nil {
		return deliveriesTable{}, err
	}
	t := deliveriesTable{Base: s.base, Filtered: q.Status != "" || q.EventType != ""}
	if len(ds) > limit {
		if paged {
			last := ds[limit-1]
			v := q.values()
			v.Set("cursor", encodeCursor(store.PageKey{CreatedAt: last.CreatedAt, ID: last.ID}))
			t.Next = r.URL.Path + "?" + v.Encode()
		}
		ds = ds[:limit]
	}
	for _, d := range ds {
		t.Rows = append(t.Rows, deliveryRow{Delivery: manage.DeliveryView(d), EndpointURL: names[d.EndpointID]})
	}
	v := q.values()
	if before == nil {
		if !paged {
			v.Set("limit", strconv.Itoa(limit))
		}
		t.Live = s.base + "/deliveries/rows?" + v.Encode()
	} else {
		t.Newest = r.URL.Path + "?" + v.Encode()
	}
	return t, nil
}

// endpointNames maps the caller's endpoints' ids to their URLs.
func (s *server) endpointNames(ctx context.Context, tenant *string) (map[string]string, error) {
	eps, err := s.opts.Service.Store.PageEndpoints(ctx, store.EndpointPage{Tenant: tenant, Limit: maxEndpointNames})
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(eps))
	for _, e := range eps {
		out[e.ID] = e.URL
	}
	return out, nil
}

type endpointOption struct {
	ID, URL  string
	Selected bool
}

type deliveriesView struct {
	Table     deliveriesTable
	Filter    deliveryQuery
	Statuses  []string
	Endpoints []endpointOption
}

func (s *server) deliveriesPage(w http.ResponseWriter, r *http.Request) {
	q := readDeliveryQuery(r)
	t, err := s.deliveryTable(r, q, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	eps, err := s.opts.Service.Store.PageEndpoints(r.Context(), store.EndpointPage{Tenant: scope(r), Limit: maxEndpointNames})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := deliveriesView{Table: t, Filter: q, Statuses: statuses}
	for _, e := range eps {
		v.Endpoints = append(v.Endpoints, endpointOption{ID: e.ID, URL: e.URL, Selected: e.ID == q.EndpointID})
	}
	t.Filtered = t.Filtered || q.EndpointID != ""
	v.Table.Filtered = t.Filtered
	s.render(w, r, http.StatusOK, "deliveries", "Deliveries", v)
}

// deliveryRows is the polled fragment: the rows of a first page.
func (s *server) deliveryRows(w http.ResponseWriter, r *http.Request) {
	q := readDeliveryQuery(r)
	q.Cursor = ""
	t, err := s.deliveryTable(r, q, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderFragment(w, "deliveries", "delivery-rows", t)
}

// header is one line of the reconstructed request.
type header struct{ Name, Value, Note string }

type deliveryView struct {
	Base string
	manage.DeliveryDetail
	Endpoint    *manage.Endpoint // nil: deleted
	Payload     string           // pretty-printed
	PayloadNote string
	Headers     []header
	Live        string
}

func (s *server) readDelivery(r *http.Request) (deliveryView, error) {
	id, err := pathID(r)
	if err != nil {
		return deliveryView{}, err
	}
	ctx, sc := r.Context(), scope(r)
	d, err := s.opts.Service.GetDelivery(ctx, id, sc)
	if err != nil {
		return deliveryView{}, err
	}
	v := deliveryView{Base: s.base, DeliveryDetail: d, Live: s.base + "/deliveries/" + url.PathEscape(d.ID) + "/live"}
	if e, err := s.opts.Service.Store.GetEndpoint(ctx, d.EndpointID, sc); err == nil {
		ev := manage.EndpointView(e)
		v.Endpoint = &ev
	} else if !errors.Is(err, store.ErrNotFound) {
		return deliveryView{}, err
	}
	return v, nil
}

func (s *server) deliveryPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.readDelivery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ev, err := s.opts.Service.Store.GetEvent(r.Context(), v.EventID, scope(r))
	switch {
	case errors.Is(err, store.ErrNotFound):
		v.PayloadNote = "The event is no longer stored."
	case err != nil:
		s.fail(w, r, err)
		return
	default:
		var buf bytes.Buffer
		if json.Indent(&buf, ev.Payload, "", "  ") == nil {
			v.Payload = buf.String()
		} else {
			v.Payload = string(ev.Payload)
		}
	}
	v.Headers = s.reconstructHeaders(v)
	s.render(w, r, http.StatusOK, "delivery", v.EventType+" delivery", v)
}

func (s *server) deliveryLive(w http.ResponseWriter, r *http.Request) {
	v, err := s.readDelivery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderFragment(w, "delivery", "delivery-live", v)
}

const masked = "••••••••"

// sensitive reports whether a custom header's value is masked.
func sensitive(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"authorization", "cookie", "token", "secret", "key", "signature", "password", "auth"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// reconstructHeaders rebuilds the headers walhook sends for a delivery (they
// are not stored): signatures masked, timestamps per attempt.
func (s *server) reconstructHeaders(v deliveryView) []header {
	hs := []header{
		{"Content-Type", "application/json", ""},
		{"User-Agent", s.opts.UserAgent, ""},
		{"webhook-id", v.ID, "the same on every attempt"},
		{"webhook-timestamp", "<unix seconds>", "set when each attempt is made"},
		{"webhook-signature", "v1," + masked, "masked; one signature per active secret"},
		{"X-Webhook-Event", v.EventType, ""},
		{"X-Webhook-Delivery", v.ID, ""},
		{"X-Webhook-Timestamp", "<unix seconds>", "as webhook-timestamp"},
		{"X-Webhook-Signature", "sha256=" + masked, "masked"},
	}
	if v.Endpoint != nil {
		var names []string
		for k := range v.Endpoint.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			h := header{Name: k, Value: v.Endpoint.Headers[k], Note: "the endpoint's custom header, as configured now"}
			if sensitive(k) {
				h.Value = masked
				h.Note += "; masked"
			}
			hs = append(hs, h)
		}
	}
	return hs
}

func (s *server) retryDelivery(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	back := s.base + "/deliveries/" + url.PathEscape(id)
	_, err = s.opts.Service.RetryDelivery(r.Context(), id, scope(r))
	switch {
	case errors.Is(err, store.ErrPending):
		http.Redirect(w, r, back+"?notice=retry-pending", http.StatusSeeOther)
	case err != nil:
		s.fail(w, r, err)
	default:
		http.Redirect(w, r, back+"?notice=retried", http.StatusSeeOther)
	}
}

// endpointOf loads the endpoint named by the path, in the request's tenant;
// it answers the error page itself when it cannot.
func (s *server) endpointOf(w http.ResponseWriter, r *http.Request) (*store.Endpoint, bool) {
	id, err := pathID(r)
	if err == nil {
		var e *store.Endpoint
		if e, err = s.opts.Service.Store.GetEndpoint(r.Context(), id, scope(r)); err == nil {
			return e, true
		}
	}
	s.fail(w, r, err)
	return nil, false
}
