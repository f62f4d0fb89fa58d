package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/walhook/walhook/internal/pgtest"
)

func TestAPIEndpointsRequireAuthValidateAndHideSecrets(t *testing.T) {
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	s := start(t, cfg)
	defer s.Stop()
	base := "http://" + s.APIAddr + "/webhooks/api"

	call := func(method, path, auth, body string) (int, map[string]any, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out, string(raw)
	}

	auth := []struct{ name, token string }{{"no token", ""}, {"wrong token", "not-the-token-at-all"}, {"prefix of token", token[:10]}}
	for _, tt := range auth {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, _ := call("GET", "/endpoints", tt.token, ""); code != http.StatusUnauthorized {
				t.Fatalf("code %d, want 401", code)
			}
		})
	}

	// Malformed requests are 400, well-formed ones with invalid values 422.
	bad := []struct {
		name, body, field string
		code              int
	}{
		{"missing url", `{"events":["*"]}`, "url", 422},
		{"ftp url", `{"url":"ftp://example.com","events":["*"]}`, "url", 422},
		{"credentials in url", `{"url":"https://u:p@example.com","events":["*"]}`, "url", 422},
		{"no events", `{"url":"https://example.com","events":[]}`, "events", 422},
		{"bad pattern", `{"url":"https://example.com","events":["ok","bad pattern"]}`, "events[1]", 422},
		{"unknown field", `{"url":"https://example.com","events":["*"],"colour":"red"}`, "colour", 400},
		{"wrong type", `{"url":"https://example.com","events":"*"}`, "events", 400},
		{"reserved header", `{"url":"https://example.com","events":["*"],"headers":{"webhook-signature":"x"}}`, "headers", 422},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			code, out, raw := call("POST", "/endpoints", token, tt.body)
			if code != tt.code {
				t.Fatalf("code %d, want %d: %s", code, tt.code, raw)
			}
			e, _ := out["error"].(map[string]any)
			if e == nil || e["field"] != tt.field || e["message"] == "" {
				t.Fatalf("error body %s does not name field %q", raw, tt.field)
			}
		})
	}

	code, created, raw := call("POST", "/endpoints", token, `{"url":"https://example.com/hook","events":["order.*"],"description":"orders"}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, raw)
	}
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create did not return the secret once: %s", raw)
	}
	id := created["id"].(string)
	for _, path := range []string{"/endpoints", "/endpoints/" + id} {
		code, _, raw := call("GET", path, token, "")
		if code != 200 || strings.Contains(raw, secret) || strings.Contains(raw, `"secret"`) {
			t.Fatalf("GET %s: code %d, leaks the secret: %s", path, code, raw)
		}
	}
	if code, _, _ := call("GET", "/endpoints/ep_doesnotexist", token, ""); code != http.StatusNotFound {
		t.Fatalf("unknown id: %d", code)
	}
	if code, out, _ := call("GET", "/deliveries?limit=1000", token, ""); code != 400 || out["error"].(map[string]any)["field"] != "limit" {
		t.Fatalf("limit over max: %d %v", code, out)
	}
}
