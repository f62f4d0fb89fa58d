package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/waitfor"
)

// rfc3339UTC matches every time the API writes.
var rfc3339UTC = regexp.MustCompile(`"(created_at|updated_at)":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"`)

func TestAPIEndpointsCreateListUpdateDelete(t *testing.T) {
	db := pgtest.New(t)
	cfg := tenantConfig(t, db.DSN)
	s := start(t, cfg)
	defer s.Stop()
	c, outsider := newAPIClient(t, s, token), newAPIClient(t, s, globexToken)

	t.Run("list pages newest first with an opaque cursor and no secrets", func(t *testing.T) {
		var created []string
		for i := range 5 {
			created = append(created, c.createEndpoint(fmt.Sprintf(`{"url":"https://example.com/hook/%d","events":["order.*"]}`, i)).ID)
		}
		slices.Reverse(created)
		var listed []string
		next := ""
		for pages := 1; ; pages++ {
			var p pageJSON[endpointJSON]
			raw := c.call("GET", "/endpoints?limit=2"+next, "", http.StatusOK, &p)
			if strings.Contains(string(raw), "whsec_") || strings.Contains(string(raw), `"secret"`) {
				t.Fatalf("list leaks a secret: %s", raw)
			}
			if !rfc3339UTC.Match(raw) {
				t.Fatalf("times are not RFC 3339 UTC: %s", raw)
			}
			for _, e := range p.Data {
				listed = append(listed, e.ID)
			}
			if p.Next == "" {
				if pages != 3 {
					t.Fatalf("%d pages of 2 for 5 endpoints, want 3", pages)
				}
				break
			}
			next = "&cursor=" + url.QueryEscape(p.Next)
		}
		if !slices.Equal(listed, created) {
			t.Fatalf("listed %v, want newest first %v", listed, created)
		}
	})

	ep := c.createEndpoint(`{"url":"https://example.com/orders","events":["order.*"],"description":"orders","headers":{"X-Env":"prod"}}`)
	path := "/endpoints/" + ep.ID

	t.Run("another tenant cannot see, change or delete it", func(t *testing.T) {
		outsider.hidden([3]string{"GET", path, ""}, [3]string{"PATCH", path, `{"description":"x"}`}, [3]string{"DELETE", path, ""})
		var p pageJSON[endpointJSON]
		if outsider.call("GET", "/endpoints", "", http.StatusOK, &p); len(p.Data) != 0 {
			t.Fatalf("another tenant lists %d endpoints", len(p.Data))
		}
	})

	t.Run("get never shows the secret", func(t *testing.T) {
		var got endpointJSON
		raw := c.call("GET", path, "", http.StatusOK, &got)
		if strings.Contains(string(raw), ep.Secret) || got.Secret != "" || got.URL != ep.URL || got.State != "active" {
			t.Fatalf("get: %s", raw)
		}
	})

	t.Run("invalid updates change nothing", func(t *testing.T) {
		bad := []struct {
			name, body, field string
			code              int
		}{
			{"ftp url", `{"url":"ftp://example.com"}`, "url", 422},
			{"no events", `{"events":[]}`, "events", 422},
			{"bad pattern", `{"events":["ok","no spaces"]}`, "events[1]", 422},
			{"reserved header", `{"headers":{"X-Webhook-Signature":"x"}}`, "headers", 422},
			{"short retry delay", `{"retry_schedule":["1ms"]}`, "retry_schedule[0]", 422},
			{"negative rate limit", `{"rate_limit":-1}`, "rate_limit", 422},
			{"too many attempts", `{"max_attempts":1000}`, "max_attempts", 422},
			{"other tenant", `{"tenant_id":"acme"}`, "tenant_id", 422},
			{"unknown field", `{"colour":"red"}`, "colour", 400},
			{"wrong type", `{"max_attempts":"three"}`, "max_attempts", 400},
			{"not json", `{"url":`, "", 400},
			{"two objects", `{} {}`, "", 400},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				c.fails("PATCH", path, tt.body, tt.code, tt.field)
				var got endpointJSON
				c.call("GET", path, "", http.StatusOK, &got)
				if got.URL != ep.URL || !slices.Equal(got.Events, ep.Events) || got.Headers["X-Env"] != "prod" || got.MaxAttempts != 0 {
					t.Fatalf("a refused update changed the endpoint: %+v", got)
				}
			})
		}
	})

	t.Run("update changes what the body names and reaches the router", func(t *testing.T) {
		var got endpointJSON
		c.call("PATCH", path, `{"url":"https://example.org/v2","events":["order.created","order.created","payment.*"],"headers":{"X-Env":"staging"},
			"retry_schedule":["30s","5m"],"max_attempts":3,"retry_client_errors":false,"rate_limit":10,"tenant_id":""}`, http.StatusOK, &got)
		want := endpointJSON{ID: ep.ID, URL: "https://example.org/v2", Description: "orders", Events: []string{"order.created", "payment.*"},
			RetrySchedule: []string{"30s", "5m0s"}, MaxAttempts: 3, RateLimit: 10, Active: true, State: "active"}
		if got.URL != want.URL || got.Description != want.Description || !slices.Equal(got.Events, want.Events) || !slices.Equal(got.RetrySchedule, want.RetrySchedule) ||
			got.MaxAttempts != 3 || got.RetryClientErrors || got.RateLimit != 10 || got.Headers["X-Env"] != "staging" || got.State != "active" {
			t.Fatalf("after update: %+v\nwant %+v", got, want)
		}
		waitfor.True(t, "the router to load the update", 10*time.Second, func() bool {
			e, ok := s.Router.Table().Get(ep.ID)
			return ok && e.URL == "https://example.org/v2" && e.MaxAttempts == 3
		})
		// Back to the defaults.
		var reset endpointJSON
		c.call("PATCH", path, `{"retry_schedule":[],"max_attempts":0,"rate_limit":0}`, http.StatusOK, &reset)
		if reset.RetrySchedule != nil || reset.MaxAttempts != 0 || reset.RateLimit != 0 || reset.URL != want.URL {
			t.Fatalf("defaults not restored: %+v", reset)
		}
	})

	t.Run("active pauses, resumes and re-enables", func(t *testing.T) {
		var got endpointJSON
		if c.call("PATCH", path, `{"active":false}`, http.StatusOK, &got); got.State != "paused" || got.Active {
			t.Fatalf("pause: %+v", got)
		}
		if c.call("PATCH", path, `{"active":true}`, http.StatusOK, &got); got.State != "active" {
			t.Fatalf("resume: %+v", got)
		}
		if _, err := s.Store.Pool().Exec(context.Background(), `UPDATE endpoints SET active = false, disabled_reason = '410 Gone', disabled_at = now() WHERE id = $1`, ep.ID); err != nil {
			t.Fatal(err)
		}
		if c.call("GET", path, "", http.StatusOK, &got); got.State != "disabled" {
			t.Fatalf("disabled: %+v", got)
		}
		if c.call("PATCH", path, `{"description":"still disabled"}`, http.StatusOK, &got); got.State != "disabled" {
			t.Fatalf("an unrelated change re-enabled the endpoint: %+v", got)
		}
		raw := c.call("PATCH", path, `{"active":true}`, http.StatusOK, &got)
		if got.State != "active" || strings.Contains(string(raw), "disabled_reason") {
			t.Fatalf("re-enable: %s", raw)
		}
	})

	t.Run("requests the API cannot take", func(t *testing.T) {
		tests := []struct {
			name, method, path, body, field string
			code                            int
		}{
			{"unknown id", "GET", "/endpoints/ep_doesnotexist", "", "", 404},
			{"update unknown id", "PATCH", "/endpoints/ep_doesnotexist", `{"description":"x"}`, "", 404},
			{"limit zero", "GET", "/endpoints?limit=0", "", "limit", 400},
			{"limit over 250", "GET", "/endpoints?limit=251", "", "limit", 400},
			{"forged cursor", "GET", "/endpoints?cursor=not-a-cursor", "", "cursor", 400},
			{"body over 1 MiB", "POST", "/endpoints", `{"url":"https://example.com","events":["*"],"description":"` + strings.Repeat("x", 1<<20) + `"}`, "", 413},
			{"method not allowed", "PUT", path, `{}`, "", 405},
			{"no such route", "GET", "/nothing-here", "", "", 404},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { c.fails(tt.method, tt.path, tt.body, tt.code, tt.field) })
		}
	})

	t.Run("delete removes it from the API and the router", func(t *testing.T) {
		c.call("DELETE", path, "", http.StatusNoContent, nil)
		c.fails("GET", path, "", http.StatusNotFound, "")
		c.fails("DELETE", path, "", http.StatusNotFound, "")
		waitfor.True(t, "the router to drop the endpoint", 10*time.Second, func() bool {
			_, ok := s.Router.Table().Get(ep.ID)
			return !ok
		})
	})
}
