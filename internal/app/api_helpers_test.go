package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/app"
	"github.com/walhook/walhook/internal/config"
)

// apiClient calls the management API of a running walhook with fixed
// credentials.
type apiClient struct {
	t      *testing.T
	base   string
	header http.Header
}

func newAPIClient(t *testing.T, s *app.Server, bearer string) *apiClient {
	c := &apiClient{t: t, base: "http://" + s.APIAddr + "/webhooks/api", header: http.Header{}}
	if bearer != "" {
		c.header.Set("Authorization", "Bearer "+bearer)
	}
	return c
}

// do sends a request and returns the status and body.
func (c *apiClient) do(method, path, body string) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// call sends a request, requires status want and decodes the body into out
// (when not nil).
func (c *apiClient) call(method, path, body string, want int, out any) []byte {
	c.t.Helper()
	code, raw := c.do(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return raw
}

// hidden checks that every request gets the 404 of an unknown id: c is a
// caller of another tenant than the objects'.
func (c *apiClient) hidden(reqs ...[3]string) {
	c.t.Helper()
	for _, r := range reqs {
		c.fails(r[0], r[1], r[2], http.StatusNotFound, "")
	}
}

// apiError is the error body every 4xx carries.
type apiError struct {
	Error struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"error"`
}

// fails sends a request that must fail with status want, naming field.
func (c *apiClient) fails(method, path, body string, want int, field string) apiError {
	c.t.Helper()
	var e apiError
	raw := c.call(method, path, body, want, &e)
	if e.Error.Message == "" || e.Error.Field != field {
		c.t.Fatalf("%s %s: error body %s, want field %q and a message", method, path, raw, field)
	}
	return e
}

// endpointJSON is the API's endpoint, as a client reads it.
type endpointJSON struct {
	ID                      string            `json:"id"`
	TenantID                string            `json:"tenant_id"`
	URL                     string            `json:"url"`
	Description             string            `json:"description"`
	Events                  []string          `json:"events"`
	Headers                 map[string]string `json:"headers"`
	Active                  bool              `json:"active"`
	State                   string            `json:"state"`
	RetrySchedule           []string          `json:"retry_schedule"`
	MaxAttempts             int               `json:"max_attempts"`
	RetryClientErrors       bool              `json:"retry_client_errors"`
	RateLimit               int               `json:"rate_limit"`
	PreviousSecretExpiresAt *time.Time        `json:"previous_secret_expires_at"`
	CreatedAt               time.Time         `json:"created_at"`
	Secret                  string            `json:"secret"`
}

type deliveryJSON struct {
	ID             string     `json:"id"`
	EndpointID     string     `json:"endpoint_id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	TenantID       string     `json:"tenant_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode *int       `json:"last_status_code"`
	CreatedAt      time.Time  `json:"created_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
	AttemptLog     []struct {
		Attempt    int       `json:"attempt"`
		StartedAt  time.Time `json:"started_at"`
		DurationMS float64   `json:"duration_ms"`
		StatusCode *int      `json:"status_code"`
		Response   string    `json:"response"`
		Error      string    `json:"error"`
	} `json:"attempt_log"`
}

type pageJSON[T any] struct {
	Data []T    `json:"data"`
	Next string `json:"next"`
}

// createEndpoint creates an endpoint through the API.
func (c *apiClient) createEndpoint(body string) endpointJSON {
	c.t.Helper()
	var ep endpointJSON
	c.call("POST", "/endpoints", body, http.StatusCreated, &ep)
	if ep.ID == "" || !strings.HasPrefix(ep.Secret, "whsec_") {
		c.t.Fatalf("create answered no id or secret: %+v", ep)
	}
	return ep
}

// syncBuffer is a log sink tests can read while walhook writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogged starts walhook with its debug log captured.
func startLogged(t *testing.T, cfg *config.Config) (*app.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	var w io.Writer = logs
	if os.Getenv("WALHOOK_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := app.Start(ctx, cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}
