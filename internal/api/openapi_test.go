package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/walhook/walhook/internal/api"
	"github.com/walhook/walhook/internal/auth"
)

type openAPIDoc struct {
	OpenAPI string                                `json:"openapi"`
	Servers []struct{ URL string }                `json:"servers"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

func loadDoc(t *testing.T, raw []byte) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPIDescribesEveryRoute fails when a route exists that the
// document lacks, or the document describes one that does not exist.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadDoc(t, api.OpenAPI())
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths {
		for m, op := range item {
			if !slices.Contains(methods, m) {
				continue // "parameters" shared by the path's operations
			}
			documented = append(documented, strings.ToUpper(m)+" "+path)
			var operation struct {
				Responses map[string]any `json:"responses"`
			}
			if err := json.Unmarshal(op, &operation); err != nil || len(operation.Responses) == 0 {
				t.Errorf("%s %s has no responses", m, path)
			}
		}
	}
	routes := api.Routes()
	sort.Strings(documented)
	sort.Strings(routes)
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is missing from openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.json describes %s, which is not a route", d)
		}
	}
}

// TestOpenAPIReferencesResolve checks that every $ref names a component.
func TestOpenAPIReferencesResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	n := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
				var cur any = doc
				for _, p := range parts {
					m, _ := cur.(map[string]any)
					cur = m[p]
				}
				if cur == nil {
					t.Errorf("$ref %s resolves to nothing", ref)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	if n < 20 {
		t.Fatalf("only %d $refs found; is the document complete?", n)
	}
}

type denyAll struct{}

func (denyAll) Authenticate(*http.Request) (auth.Principal, error) {
	return auth.Principal{}, &auth.Error{Status: http.StatusUnauthorized, Message: "no"}
}

// TestOpenAPIIsServedWithoutAuthForTheConfiguredPrefix: the document is
// public and names the configured base; every other route authenticates.
func TestOpenAPIIsServedWithoutAuthForTheConfiguredPrefix(t *testing.T) {
	srv := httptest.NewServer(api.Handler(api.Options{Prefix: "/hooks/v1/", Auth: denyAll{}}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/hooks/v1/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	doc := loadDoc(t, raw)
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/hooks/v1/api" {
		t.Fatalf("servers = %+v, want /hooks/v1/api", doc.Servers)
	}
	if len(doc.Paths) != len(loadDoc(t, api.OpenAPI()).Paths) {
		t.Fatal("the served document differs from the checked-in one")
	}
	for _, r := range api.Routes() {
		method, path, _ := strings.Cut(r, " ")
		if path == "/openapi.json" {
			continue
		}
		req, _ := http.NewRequest(method, srv.URL+"/hooks/v1/api"+strings.ReplaceAll(path, "{id}", "x1"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", r, resp.StatusCode)
		}
	}
}
