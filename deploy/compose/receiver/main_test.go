package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/signature"
)

func signed(t *testing.T, secret, id string, body []byte, at time.Time) *http.Request {
	t.Helper()
	signer, err := signature.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	signer.Sign(id, at, body).SetHeaders(req.Header)
	req.Header.Set("X-Webhook-Event", "order.created")
	return req
}

func TestHookAcceptsOnlySignedRequestsOnce(t *testing.T) {
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(slog.New(slog.DiscardHandler), 0)
	h := rcv.Handler()
	body := []byte(`{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":42}}`)
	serve := func(req *http.Request) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}

	if code := serve(signed(t, secret, "msg_1", body, time.Now())); code != http.StatusServiceUnavailable {
		t.Fatalf("before subscribing: %d, want 503", code)
	}
	rcv.setSecret(secret)
	if code := serve(signed(t, secret, "msg_1", body, time.Now())); code != http.StatusNoContent {
		t.Fatalf("signed request: %d, want 204", code)
	}
	if code := serve(signed(t, secret, "msg_1", body, time.Now())); code != http.StatusOK {
		t.Fatalf("re-send: %d, want 200", code)
	}
	tampered := signed(t, secret, "msg_2", body, time.Now())
	tampered.Body = io.NopCloser(bytes.NewReader(append([]byte(nil), bytes.Replace(body, []byte("42"), []byte("43"), 1)...)))
	if code := serve(tampered); code != http.StatusUnauthorized {
		t.Fatalf("tampered body: %d, want 401", code)
	}
	other, _ := signature.NewSecret()
	if code := serve(signed(t, other, "msg_3", body, time.Now())); code != http.StatusUnauthorized {
		t.Fatalf("other secret: %d, want 401", code)
	}
	if code := serve(signed(t, secret, "msg_4", body, time.Now().Add(-time.Hour))); code != http.StatusUnauthorized {
		t.Fatalf("old timestamp: %d, want 401", code)
	}

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	var status struct {
		Accepted, Duplicates, Rejected int
		Last                           []event
	}
	if err := json.Unmarshal(w.Body.Bytes(), &status); err != nil {
		t.Fatal(err)
	}
	if status.Accepted != 1 || status.Duplicates != 1 || status.Rejected != 3 || len(status.Last) != 1 || status.Last[0].Type != "order.created" {
		t.Fatalf("status = %+v", status)
	}
}

// fakeWalhook is the part of walhook's management API the subscriber uses.
type fakeWalhook struct {
	mu      sync.Mutex
	created int
	known   map[string]bool
}

func (f *fakeWalhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer token-0123456789abcdef" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/webhooks/api/endpoints":
		var in struct {
			URL    string   `json:"url"`
			Events []string `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.URL == "" || len(in.Events) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.created++
		id := "ep_" + string(rune('a'+f.created))
		f.known[id] = true
		secret, _ := signature.NewSecret()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "url": in.URL, "events": in.Events, "secret": secret})
	case r.Method == http.MethodGet && f.known[r.URL.Path[len("/webhooks/api/endpoints/"):]]:
		_ = json.NewEncoder(w).Encode(map[string]any{"id": r.URL.Path})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestSubscribeCreatesOnceAndReusesTheKeptSecret(t *testing.T) {
	api := &fakeWalhook{known: map[string]bool{}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	sub := subscriber{
		API: srv.URL + "/webhooks/api", Token: "token-0123456789abcdef", URL: "http://receiver:9000/hook",
		Events: []string{"*"}, StateFile: filepath.Join(t.TempDir(), "state", "endpoint.json"), Client: srv.Client(),
	}
	ctx := context.Background()
	first, err := sub.Subscribe(ctx)
	if err != nil || first == "" {
		t.Fatalf("first subscribe: %q, %v", first, err)
	}
	again, err := sub.Subscribe(ctx)
	if err != nil || again != first || api.created != 1 {
		t.Fatalf("restart: secret reused %v, endpoints created %d, err %v", again == first, api.created, err)
	}
	// The database was reset: the remembered endpoint is gone.
	api.known = map[string]bool{}
	third, err := sub.Subscribe(ctx)
	if err != nil || third == first || api.created != 2 {
		t.Fatalf("after reset: new secret %v, endpoints created %d, err %v", third != first, api.created, err)
	}
	sub.Token = "wrong"
	sub.StateFile = filepath.Join(t.TempDir(), "none.json")
	if _, err := sub.Subscribe(ctx); err == nil {
		t.Fatal("subscribe with a wrong token succeeded")
	}
}
