package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/walhook/walhook/internal/pgtest"
)

// The sidecar: walhook's routes under api.prefix, the app behind everything
// else, on one listener. (Proxy details are tested in internal/proxy.)
func TestListenServesOwnRoutesAndProxiesTheRestToTheApp(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-App", "yes")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" from "+r.Header.Get("X-Forwarded-For"))
	}))
	defer upstream.Close()
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.Proxy.Upstream = upstream.URL
	s := start(t, cfg)
	defer s.Stop()

	tests := []struct {
		name, path string
		wantCode   int
		wantBody   string
	}{
		{"app page", "/orders/42?x=1", http.StatusTeapot, "GET /orders/42?x=1 from 127.0.0.1"},
		{"look-alike of the prefix goes to the app", "/webhooksX", http.StatusTeapot, "GET /webhooksX from 127.0.0.1"},
		{"own API needs its token", "/webhooks/api/endpoints", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get("http://" + s.APIAddr + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || (tt.wantBody != "" && string(body) != tt.wantBody) {
				t.Fatalf("GET %s = %d %q, want %d %q", tt.path, resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
			if tt.wantCode == http.StatusTeapot && resp.Header.Get("X-App") != "yes" {
				t.Errorf("the app's headers did not come back")
			}
		})
	}
}
