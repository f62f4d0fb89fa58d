package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/leakcheck"
)

// testPrefix is the API prefix the tests mount walhook's own routes under.
const testPrefix = "/webhooks/"

// TestMain fails a green run that leaves a goroutine in HTTP or proxy code:
// every server is closed and every connection gone by then, so a survivor
// is a leak (e.g. a websocket copier that never ends).
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Main(m.Run, 10*time.Second, "net/http", "internal/proxy"))
}

// testBundle is walhook's listen address with its parts.
type testBundle struct {
	front  *httptest.Server // Mount(testPrefix, own, proxy)
	client *http.Client     // adds no headers of its own, follows no redirects
	logs   *syncBuffer      // the proxy's JSON log
}

// setup starts upstream (if not nil) as the app, the proxy to it and the
// front server. own answers "own <request URI>".
func setup(t *testing.T, upstream http.Handler, opts Options) *testBundle {
	t.Helper()
	b := &testBundle{logs: &syncBuffer{}}
	if upstream != nil {
		app := httptest.NewServer(upstream)
		t.Cleanup(app.Close)
		u, err := url.Parse(app.URL)
		if err != nil {
			t.Fatal(err)
		}
		opts.Upstream = u
	}
	opts.Logger = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.front = httptest.NewServer(Mount(testPrefix, ownHandler(), p))
	t.Cleanup(b.front.Close)
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	b.client = &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b
}

func ownHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "own %s", r.RequestURI)
	})
}

// do sends a request to the front server with a deadline and returns the
// response with its body read.
func (b *testBundle) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := b.client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body of %s %s: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

// newRequest builds a request for target (path and query, sent as written)
// on the front server.
func (b *testBundle) newRequest(t *testing.T, method, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, b.front.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.URL.RequestURI(); got != target {
		t.Fatalf("test bug: %q would be sent as %q", target, got)
	}
	return req
}

// syncBuffer is a log sink written by server goroutines and read by tests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
