package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/walhook/walhook/internal/store"
)

// pageTemplate is the layout with one page's "content".
type pageTemplate = template.Template

// pageNames are the templates/<name>.html files that are whole pages;
// partials.html is shared by all.
var pageNames = []string{"endpoints", "endpoint", "endpoint_form", "secret", "deliveries", "delivery", "signin", "error"}

var funcs = template.FuncMap{
	"ago":      func(t any) string { return ago(timeOf(t)) },
	"abstime":  func(t any) string { return timeOf(t).UTC().Format("2006-01-02 15:04:05 UTC") },
	"isotime":  func(t any) string { return timeOf(t).UTC().Format(time.RFC3339) },
	"badge":    statusClass,
	"join":     strings.Join,
	"contains": func(list []string, v string) bool { return contains(list, v) },
	"ok2xx":    func(c *int) bool { return c != nil && *c >= 200 && *c < 300 },
	"ms": func(f float64) string {
		if f < 10 {
			return strconv.FormatFloat(f, 'f', 1, 64)
		}
		return strconv.FormatFloat(f, 'f', 0, 64)
	},
}

// timeOf reads a time.Time or *time.Time (nil: zero).
func timeOf(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func parsePages() (map[string]*pageTemplate, error) {
	out := map[string]*pageTemplate{}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// view is what every page gets.
type view struct {
	Title   string
	Base    string
	Nav     string // "endpoints" or "deliveries": the current section
	CSRF    string
	Admin   bool   // sees every tenant
	Tenant  string // the tenant of a tenant-bound caller
	Session bool   // signed in with a session: offer sign out
	Shown   bool   // signed in: show the navigation
	Notice  string
	Page    any
}

// render writes a page; errors are logged (the header is sent by then).
func (s *server) render(w http.ResponseWriter, r *http.Request, code int, name, title string, page any) {
	st := state(r)
	v := view{Title: title, Base: s.base, CSRF: st.csrf, Admin: st.signedIn && st.principal.All, Tenant: st.principal.Tenant,
		Session: st.session, Shown: st.signedIn, Notice: notice(r), Page: page}
	switch name {
	case "endpoints", "endpoint", "endpoint_form", "secret":
		v.Nav = "endpoints"
	case "deliveries", "delivery":
		v.Nav = "deliveries"
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("dashboard page failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeHTML(w, code, buf.Bytes())
}

// renderFragment writes a named template of a page alone (polled parts).
func (s *server) renderFragment(w http.ResponseWriter, page, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("dashboard fragment failed", "fragment", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeHTML(w, http.StatusOK, buf.Bytes())
}

func writeHTML(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func (s *server) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if isFragment(r) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		return
	}
	s.render(w, r, code, "error", http.StatusText(code), errorView{Code: code, Status: http.StatusText(code), Message: msg,
		SignIn: code == http.StatusUnauthorized && s.opts.Mode == "token"})
}

type errorView struct {
	Code    int
	Status  string
	Message string
	SignIn  bool
}

// notices are the fixed messages a redirect may ask for (?notice=): no
// text of the request is ever shown back.
var notices = map[string]string{
	"created":       "Endpoint created.",
	"updated":       "Endpoint saved.",
	"deleted":       "Endpoint deleted. Its delivery history stays in the log.",
	"paused":        "Endpoint paused: it gets no new deliveries and its retries are held until you resume it.",
	"resumed":       "Endpoint active again; held deliveries are released.",
	"retried":       "Retry queued: an attempt is made now.",
	"retry-pending": "An attempt of this delivery is under way; try again when it has finished.",
	"test":          "Test event sent to this endpoint only. Its attempt is below.",
	"since-invalid": "Recover since: give a duration ago (2h, 90m) or an RFC 3339 time.",
	"not-sending":   "walhook is not sending right now (starting or stopping). Try again in a moment.",
}

func notice(r *http.Request) string {
	q := r.URL.Query()
	key := q.Get("notice")
	if key == "recovered" {
		n, err := strconv.Atoi(q.Get("n"))
		if err != nil || n < 0 {
			return ""
		}
		if n == 1 {
			return "1 failed delivery re-queued."
		}
		return strconv.Itoa(n) + " failed deliveries re-queued."
	}
	return notices[key]
}

// statusClass is the CSS class of a delivery status badge.
func statusClass(status string) string {
	switch store.Status(status) {
	case store.StatusDelivered, store.StatusPending, store.StatusRetrying, store.StatusFailed:
		return "badge badge-" + status
	}
	return "badge"
}

// ago says how long before now t was, briefly.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		// Minutes at best: a polled table then changes only when its
		// data does, or once a minute.
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
}

// formErrorStatus answers a form sent back with its errors. It is 200, not
// 422: browsers log every 4xx page load as a console error, and the page is
// the form working as intended.
const formErrorStatus = http.StatusOK
