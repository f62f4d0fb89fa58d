// Command receiver is the compose demo's webhook consumer. At start it
// subscribes itself to walhook through the management API (or uses
// WEBHOOK_SECRET), then accepts POST /hook only when both of walhook's
// signatures verify, de-duplicates on webhook-id and keeps the last events
// for GET /.
//
// Environment:
//
//	LISTEN          address to serve on (default :9000)
//	WEBHOOK_SECRET  the endpoint's secret; when set, no self-subscription
//	WALHOOK_API     walhook's API base (default http://walhook:8080/webhooks/api)
//	WALHOOK_TOKEN   a bearer token of walhook's auth.tokens
//	SELF_URL        the URL walhook should POST to (default http://receiver:9000/hook)
//	EVENTS          comma-separated patterns to subscribe to (default *)
//	STATE_FILE      where the endpoint id and secret are kept across restarts
//	                (default /data/endpoint.json)
//	FAIL_RATE       fraction of requests answered 500, to show retries (default 0)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/walhook/walhook/internal/signature"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("receiver stopped", "err", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, log *slog.Logger) error {
	failRate, err := strconv.ParseFloat(env("FAIL_RATE", "0"), 64)
	if err != nil || failRate < 0 || failRate > 1 {
		return fmt.Errorf("FAIL_RATE must be a number between 0 and 1, got %q", os.Getenv("FAIL_RATE"))
	}
	rcv := newReceiver(log, failRate)
	if secret := os.Getenv("WEBHOOK_SECRET"); secret != "" {
		rcv.setSecret(secret)
	} else {
		sub := subscriber{
			API:       strings.TrimSuffix(env("WALHOOK_API", "http://walhook:8080/webhooks/api"), "/"),
			Token:     os.Getenv("WALHOOK_TOKEN"),
			URL:       env("SELF_URL", "http://receiver:9000/hook"),
			Events:    strings.Split(env("EVENTS", "*"), ","),
			StateFile: env("STATE_FILE", "/data/endpoint.json"),
			Client:    &http.Client{Timeout: 10 * time.Second},
		}
		go func() {
			// walhook may start after us: retry until it answers.
			for {
				secret, err := sub.Subscribe(ctx)
				if err == nil {
					rcv.setSecret(secret)
					log.Info("subscribed to walhook", "url", sub.URL, "events", sub.Events)
					return
				}
				log.Warn("subscribing to walhook; retrying", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
			}
		}()
	}
	srv := &http.Server{Addr: env("LISTEN", ":9000"), Handler: rcv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("receiver listening", "addr", srv.Addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// event is one accepted webhook, as shown by GET /.
type event struct {
	ID         string          `json:"webhook_id"`
	Type       string          `json:"type"`
	ReceivedAt time.Time       `json:"received_at"`
	Body       json.RawMessage `json:"body"`
}

// receiver verifies and records webhooks.
type receiver struct {
	log      *slog.Logger
	failRate float64
	now      func() time.Time

	mu        sync.Mutex
	secret    string
	seen      map[string]bool
	last      []event // newest last, at most keepLast
	accepted  int
	duplicate int
	rejected  int
	failed    int
}

const keepLast = 100

func newReceiver(log *slog.Logger, failRate float64) *receiver {
	return &receiver{log: log, failRate: failRate, now: time.Now, seen: map[string]bool{}}
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s
}

// Handler serves POST /hook and GET /.
func (r *receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", r.hook)
	mux.HandleFunc("GET /{$}", r.status)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

func (r *receiver) hook(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	if secret == "" {
		// Not subscribed yet: walhook retries later.
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	now := r.now()
	if err := signature.Verify(secret, req.Header, body, now, signature.DefaultTolerance); err != nil {
		r.reject(w, "standard webhooks signature", err)
		return
	}
	if err := signature.VerifyLegacy(secret, req.Header, body, now, signature.DefaultTolerance); err != nil {
		r.reject(w, "X-Webhook-Signature", err)
		return
	}
	if r.failRate > 0 && rand.Float64() < r.failRate {
		r.mu.Lock()
		r.failed++
		r.mu.Unlock()
		http.Error(w, "simulated failure", http.StatusInternalServerError)
		return
	}
	id := req.Header.Get("webhook-id")
	var parsed struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &parsed)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[id] {
		// At-least-once: a re-send carries the same webhook-id.
		r.duplicate++
		w.WriteHeader(http.StatusOK)
		return
	}
	r.seen[id] = true
	r.accepted++
	r.last = append(r.last, event{ID: id, Type: parsed.Type, ReceivedAt: now.UTC(), Body: json.RawMessage(body)})
	if len(r.last) > keepLast {
		r.last = append(r.last[:0], r.last[len(r.last)-keepLast:]...)
	}
	r.log.Info("webhook received", "webhook_id", id, "type", parsed.Type)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) reject(w http.ResponseWriter, what string, err error) {
	r.mu.Lock()
	r.rejected++
	r.mu.Unlock()
	r.log.Warn("webhook rejected", "check", what, "err", err)
	http.Error(w, "invalid signature", http.StatusUnauthorized)
}

func (r *receiver) status(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := make([]event, 0, len(r.last))
	for i := len(r.last) - 1; i >= 0 && len(last) < 20; i-- {
		last = append(last, r.last[i])
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{
		"subscribed": r.secret != "", "accepted": r.accepted, "duplicates": r.duplicate,
		"rejected": r.rejected, "simulated_failures": r.failed, "last": last,
	})
}

// subscriber creates (or finds again) the receiver's endpoint in walhook.
type subscriber struct {
	API, Token, URL string
	Events          []string
	StateFile       string
	Client          *http.Client
}

type endpointState struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// Subscribe returns the endpoint's secret. walhook shows a secret only when
// it creates the endpoint, so the id and secret are kept in StateFile; an
// endpoint remembered there and still known to walhook is reused.
func (s subscriber) Subscribe(ctx context.Context) (string, error) {
	if b, err := os.ReadFile(s.StateFile); err == nil {
		var st endpointState
		if json.Unmarshal(b, &st) == nil && st.ID != "" && st.Secret != "" {
			code, err := s.do(ctx, http.MethodGet, "/endpoints/"+st.ID, nil, nil)
			switch {
			case err != nil:
				return "", err
			case code == http.StatusOK:
				return st.Secret, nil
			case code != http.StatusNotFound:
				return "", fmt.Errorf("GET endpoint %s: status %d", st.ID, code)
			}
			// 404: the database was reset; subscribe again.
		}
	}
	in := map[string]any{"url": s.URL, "events": s.Events, "description": "compose demo receiver"}
	var out endpointState
	code, err := s.do(ctx, http.MethodPost, "/endpoints", in, &out)
	if err != nil {
		return "", err
	}
	if code != http.StatusCreated || out.Secret == "" {
		return "", fmt.Errorf("POST endpoints: status %d", code)
	}
	b, _ := json.Marshal(out)
	if err := os.MkdirAll(filepath.Dir(s.StateFile), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(s.StateFile, b, 0o600); err != nil {
		return "", fmt.Errorf("keep endpoint secret: %w", err)
	}
	return out.Secret, nil
}

func (s subscriber) do(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.API+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}
