package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func plainApp() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app %s", r.RequestURI)
	})
}

// routingCases are request targets (as sent on the wire) and where Mount
// must send them, for prefix /webhooks/.
var routingCases = []struct {
	name   string
	target string
	want   string // "own", "app" or "redirect <Location>"
}{
	{name: "prefix without slash", target: "/webhooks", want: "own"},
	{name: "prefix", target: "/webhooks/", want: "own"},
	{name: "below prefix", target: "/webhooks/api/x", want: "own"},
	{name: "below prefix with query", target: "/webhooks/api/x?limit=5", want: "own"},
	{name: "lookalike segment", target: "/webhooksX", want: "app"},
	{name: "lookalike extension", target: "/webhooks.json", want: "app"},
	{name: "other", target: "/other", want: "app"},
	{name: "root", target: "/", want: "app"},
	{name: "case differs", target: "/Webhooks/api", want: "app"},
	{name: "dot-dot out of prefix", target: "/webhooks/../admin", want: "app"},
	{name: "dot-dot to root", target: "/webhooks/..", want: "app"},
	{name: "dot-dot into prefix", target: "/x/../webhooks/api/x?q=1", want: "redirect /webhooks/api/x?q=1"},
	{name: "dot segment in prefix", target: "/webhooks/./api", want: "redirect /webhooks/api"},
	{name: "double slash before prefix", target: "//webhooks/api", want: "redirect /webhooks/api"},
	{name: "double slash in prefix", target: "/webhooks//api/", want: "redirect /webhooks/api/"},
	{name: "escaped dots are a plain segment", target: "/webhooks/%2e%2e/admin", want: "own"},
	{name: "escaped slash is no separator", target: "/webhooks%2Fapi", want: "app"},
	{name: "escaped letter in prefix", target: "/web%68ooks/api", want: "own"},
}

func TestMountRouting(t *testing.T) {
	t.Parallel()
	b := setup(t, plainApp(), Options{})
	for _, tt := range routingCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := b.do(t, b.newRequest(t, "GET", tt.target, nil))
			var got string
			switch {
			case resp.StatusCode == http.StatusTemporaryRedirect:
				got = "redirect " + resp.Header.Get("Location")
			case body == "own "+tt.target:
				got = "own"
			case body == "app "+tt.target:
				got = "app"
			default:
				got = fmt.Sprintf("%d %q", resp.StatusCode, body)
			}
			if got != tt.want {
				t.Fatalf("GET %s went to %s, want %s", tt.target, got, tt.want)
			}
		})
	}
}

func TestNoUpstream(t *testing.T) {
	t.Parallel()
	fromNew, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		proxy      http.Handler
		target     string
		wantStatus int
	}{
		{name: "New without upstream: other path", proxy: fromNew, target: "/other", wantStatus: 404},
		{name: "New without upstream: root", proxy: fromNew, target: "/", wantStatus: 404},
		{name: "New without upstream: lookalike", proxy: fromNew, target: "/webhooksX", wantStatus: 404},
		{name: "New without upstream: own route", proxy: fromNew, target: "/webhooks/api/x", wantStatus: 200},
		{name: "nil proxy: other path", proxy: nil, target: "/other?x=1", wantStatus: 404},
		{name: "nil proxy: own route", proxy: nil, target: "/webhooks", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			front := httptest.NewServer(Mount(testPrefix, ownHandler(), tt.proxy))
			t.Cleanup(front.Close)
			b := &testBundle{front: front, client: front.Client()}
			resp, body := b.do(t, b.newRequest(t, "GET", tt.target, nil))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == http.StatusNotFound {
				assertJSONError(t, resp, body)
			} else if body != "own "+tt.target {
				t.Fatalf("body = %q, want own route", body)
			}
		})
	}
}

func TestMountPrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		prefix string
		target string
		want   string // "own" or "app"
	}{
		{name: "nested prefix itself", prefix: "/a/b/", target: "/a/b", want: "own"},
		{name: "nested prefix below", prefix: "/a/b/", target: "/a/b/c", want: "own"},
		{name: "nested prefix parent", prefix: "/a/b/", target: "/a", want: "app"},
		{name: "nested prefix parent with slash", prefix: "/a/b/", target: "/a/", want: "app"},
		{name: "nested prefix sibling", prefix: "/a/b/", target: "/a/bc", want: "app"},
		{name: "prefix without trailing slash", prefix: "/webhooks", target: "/webhooks/x", want: "own"},
		{name: "root prefix owns everything", prefix: "/", target: "/anything", want: "own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := route(t, Mount(tt.prefix, marker("own"), marker("app")), tt.target); got != tt.want {
				t.Fatalf("prefix %s: %s went to %s, want %s", tt.prefix, tt.target, got, tt.want)
			}
		})
	}
}

func TestMountRejectsBadPrefix(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "webhooks/", "/webhooks//", "/a/../b/", "/./"} {
		t.Run(prefix, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Fatalf("Mount(%q) did not panic", prefix)
				}
			}()
			Mount(prefix, marker("own"), nil)
		})
	}
}

// FuzzMountAgreesWithServeMux checks the invariant Mount is built on: for
// any request target it picks the same side as http.ServeMux with the
// patterns "/webhooks", "/webhooks/" (own) and "/" (app), so own's mux and
// Mount never disagree about whose path it is.
func FuzzMountAgreesWithServeMux(f *testing.F) {
	for _, tt := range routingCases {
		f.Add(tt.target)
	}
	for _, s := range []string{"*", "/webhooks/%2F", "/%77ebhooks", "/webhooks/%", "/a/./../webhooks"} {
		f.Add(s)
	}
	mount := Mount(testPrefix, marker("own"), marker("app"))
	mux := http.NewServeMux()
	mux.Handle("/webhooks", marker("own"))
	mux.Handle("/webhooks/", marker("own"))
	mux.Handle("/", marker("app"))
	f.Fuzz(func(t *testing.T, target string) {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n")))
		if err != nil {
			return // the server would answer 400 before any handler
		}
		_, pattern := mux.Handler(r)
		want := "app"
		if pattern == "/webhooks" || pattern == "/webhooks/" {
			want = "own"
		}
		if got := routeReq(t, mount, r); got != want {
			t.Fatalf("%q: Mount chose %s, ServeMux (pattern %q) %s", target, got, pattern, want)
		}
	})
}

// marker answers with its name.
func marker(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })
}

func route(t *testing.T, h http.Handler, target string) string {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return routeReq(t, h, r)
}

// routeReq reports which marker h sent r to. A redirect counts as own
// provided it points, on this origin, to a canonical path that h gives to own.
func routeReq(t *testing.T, h http.Handler, r *http.Request) string {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusTemporaryRedirect {
		return w.Body.String()
	}
	loc := w.Header().Get("Location")
	if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
		t.Fatalf("%s redirected off this origin: %q", r.RequestURI, loc)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", loc, nil))
	if w.Code != http.StatusOK || w.Body.String() != "own" {
		t.Fatalf("%s redirected to %q, which got %d %q, not own", r.RequestURI, loc, w.Code, w.Body.String())
	}
	return "own"
}
