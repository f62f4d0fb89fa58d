package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen is what the echo app received, as it reports it in its response.
type seen struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       string
}

// echoApp answers every request with what it received, in the status given
// by the X-Want-Status request header, with two cookies and a header of its
// own.
func echoApp() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		status := http.StatusOK
		if s := r.Header.Get("X-Want-Status"); s != "" {
			status, _ = strconv.Atoi(s)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "app")
		w.Header().Add("Set-Cookie", "a=1; Path=/")
		w.Header().Add("Set-Cookie", "b=2; Path=/; HttpOnly")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(seen{r.Method, r.RequestURI, r.Host, r.Header, string(body)})
	})
}

func TestForward(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string
		target     string // path and query exactly as sent on the wire
		host       string // Host header; empty: the front server's address
		body       string
		wantStatus int
	}{
		{name: "get with query", method: "GET", target: "/orders/42?expand=items&x=%2F", wantStatus: 200},
		{name: "query the stdlib would sanitize", method: "GET", target: "/search?a=1;b=2&c", wantStatus: 200},
		{name: "post body", method: "POST", target: "/orders", body: `{"sku":"x-1"}`, wantStatus: 201},
		{name: "put body", method: "PUT", target: "/orders/42", body: "replaced", wantStatus: 200},
		{name: "patch body", method: "PATCH", target: "/orders/42", body: `{"qty":2}`, wantStatus: 200},
		{name: "delete", method: "DELETE", target: "/orders/42", wantStatus: 204},
		{name: "custom method", method: "PURGE", target: "/cache", wantStatus: 200},
		{name: "escaped path kept", method: "GET", target: "/files/a%2Fb/c%20d", wantStatus: 200},
		{name: "dot segments kept", method: "GET", target: "/webhooks/../admin", wantStatus: 200},
		{name: "double slashes kept", method: "GET", target: "//double//slash/", wantStatus: 200},
		{name: "prefix lookalike", method: "GET", target: "/webhooksX/y", wantStatus: 200},
		{name: "original host kept", method: "GET", target: "/", host: "shop.example.com", wantStatus: 200},
		{name: "upstream error status passes", method: "GET", target: "/missing", wantStatus: 404},
		{name: "upstream teapot", method: "POST", target: "/brew", body: "coffee", wantStatus: 418},
	}
	b := setup(t, echoApp(), Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := b.newRequest(t, tt.method, tt.target, body)
			wantHost := req.URL.Host
			if tt.host != "" {
				req.Host, wantHost = tt.host, tt.host
			}
			req.Header.Set("X-Want-Status", strconv.Itoa(tt.wantStatus))
			req.Header.Set("Authorization", "Bearer app-token")
			req.Header.Set("Cookie", "sid=s1")
			req.Header.Add("X-Multi", "one")
			req.Header.Add("X-Multi", "two")
			// A header the client declares hop-by-hop must not travel on.
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "only-to-walhook")

			resp, respBody := b.do(t, req)

			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, respBody)
			}
			if got := resp.Header.Get("X-Upstream"); got != "app" {
				t.Errorf("X-Upstream = %q, want app", got)
			}
			wantCookies := []string{"a=1; Path=/", "b=2; Path=/; HttpOnly"}
			if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, wantCookies) {
				t.Errorf("Set-Cookie = %q, want %q", got, wantCookies)
			}
			if tt.wantStatus == http.StatusNoContent {
				return // no body to report what the app saw
			}
			var s seen
			if err := json.Unmarshal([]byte(respBody), &s); err != nil {
				t.Fatalf("app response %q: %v", respBody, err)
			}
			if s.Method != tt.method || s.RequestURI != tt.target || s.Body != tt.body || s.Host != wantHost {
				t.Errorf("app saw %s %s host %q body %q, want %s %s host %q body %q",
					s.Method, s.RequestURI, s.Host, s.Body, tt.method, tt.target, wantHost, tt.body)
			}
			for h, want := range map[string][]string{
				"Authorization":     {"Bearer app-token"},
				"Cookie":            {"sid=s1"},
				"X-Multi":           {"one", "two"},
				"X-Forwarded-For":   {"127.0.0.1"},
				"X-Forwarded-Proto": {"http"},
				"X-Forwarded-Host":  {wantHost},
				"X-Hop":             nil,
				"Accept-Encoding":   nil, // the client sent none; none may be added
			} {
				if got := s.Header.Values(h); !slices.Equal(got, want) {
					t.Errorf("app saw %s = %q, want %q", h, got, want)
				}
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	const host = "shop.example.com"
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name      string
		trusted   []netip.Prefix
		in        http.Header // forwarding headers the client sends
		wantFor   string
		wantProto string
		wantHost  string
	}{
		{
			name:    "untrusted peer cannot forge the chain",
			trusted: nil,
			in: http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"},
				"X-Forwarded-Host": {"evil.example"}, "Forwarded": {"for=198.51.100.1"}},
			wantFor: "127.0.0.1", wantProto: "http", wantHost: host,
		},
		{
			name:    "peer outside the trusted prefixes is untrusted",
			trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			in:      http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"}},
			wantFor: "127.0.0.1", wantProto: "http", wantHost: host,
		},
		{
			name:    "trusted peer: chain extended, scheme and host kept",
			trusted: loopback,
			in: http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"},
				"X-Forwarded-Host": {"www.example.com"}},
			wantFor: "203.0.113.7, 127.0.0.1", wantProto: "https", wantHost: "www.example.com",
		},
		{
			name:    "trusted peer: several header lines joined",
			trusted: loopback,
			in:      http.Header{"X-Forwarded-For": {"203.0.113.7", "10.1.2.3"}},
			wantFor: "203.0.113.7, 10.1.2.3, 127.0.0.1", wantProto: "http", wantHost: host,
		},
		{
			name:    "trusted peer without forwarding headers",
			trusted: loopback,
			in:      http.Header{},
			wantFor: "127.0.0.1", wantProto: "http", wantHost: host,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, echoApp(), Options{TrustedProxies: tt.trusted})
			req := b.newRequest(t, "GET", "/", nil)
			req.Host = host
			for h, v := range tt.in {
				req.Header[h] = v
			}
			_, body := b.do(t, req)
			var s seen
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				t.Fatalf("app response %q: %v", body, err)
			}
			for h, want := range map[string][]string{
				"X-Forwarded-For":   {tt.wantFor},
				"X-Forwarded-Proto": {tt.wantProto},
				"X-Forwarded-Host":  {tt.wantHost},
				"Forwarded":         nil, // walhook speaks X-Forwarded-* only
			} {
				if got := s.Header.Values(h); !slices.Equal(got, want) {
					t.Errorf("app saw %s = %q, want %q", h, got, want)
				}
			}
			if s.Host != host {
				t.Errorf("app saw Host %q, want %q", s.Host, host)
			}
		})
	}
}

// TestRequestBodyStreamed sends 20 MB whose first part must reach the app
// before the client writes the rest: a proxy that buffered the body would
// deadlock here, and the deadline turns that into a failure.
func TestRequestBodyStreamed(t *testing.T) {
	t.Parallel()
	const (
		total = 20 << 20
		first = 64 << 10
	)
	gotFirst := make(chan struct{})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		if _, err := io.CopyN(h, r.Body, first); err != nil {
			http.Error(w, "reading first part: "+err.Error(), http.StatusBadRequest)
			return
		}
		close(gotFirst)
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, "reading rest: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", first+n, h.Sum(nil))
	})
	b := setup(t, app, Options{})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	sent := sha256.New()
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.NewChaCha8([32]byte{1})
		chunk := make([]byte, first)
		write := func() error {
			_, _ = rng.Read(chunk)
			sent.Write(chunk)
			_, err := pw.Write(chunk)
			return err
		}
		if err := write(); err != nil {
			return
		}
		select {
		case <-gotFirst:
		case <-ctx.Done():
			pw.CloseWithError(fmt.Errorf("the app never received the first %d bytes: the body is buffered", first))
			return
		}
		for range total/first - 1 {
			if err := write(); err != nil {
				return
			}
		}
		pw.Close()
	})
	req := b.newRequest(t, "POST", "/upload", pr)
	resp, err := b.client.Do(req.WithContext(ctx))
	if err != nil {
		pr.CloseWithError(err)
		wg.Wait()
		t.Fatalf("POST: %v (a proxy that buffers the body never lets the first part through)", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %s", total, hex.EncodeToString(sent.Sum(nil)))
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
	}
}

// TestStreamingResponse has the app write and flush a first part, then wait
// until the test has read that part through the proxy before writing the
// rest. A buffering proxy would never deliver the first part on its own.
func TestStreamingResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		contentType   string
		contentLength bool // declare the full length up front
		first, rest   string
	}{
		{name: "chunked", contentType: "text/plain", first: "first\n", rest: "second\n"},
		{name: "server-sent events", contentType: "text/event-stream", first: "data: one\n\n", rest: "data: two\n\n"},
		{name: "known length dribbled out", contentType: "application/octet-stream", contentLength: true, first: "0123456789", rest: "abcdef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			t.Cleanup(releaseOnce) // so the app returns even if the test fails early
			app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.contentLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(tt.first)+len(tt.rest)))
				}
				io.WriteString(w, tt.first)
				if err := http.NewResponseController(w).Flush(); err != nil {
					t.Errorf("app flush: %v", err)
				}
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				io.WriteString(w, tt.rest)
			})
			b := setup(t, app, Options{})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			resp, err := b.client.Do(b.newRequest(t, "GET", "/events", nil).WithContext(ctx))
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			got := make([]byte, len(tt.first))
			if _, err := io.ReadFull(resp.Body, got); err != nil {
				t.Fatalf("first part did not arrive before the app was released: %v", err)
			}
			if string(got) != tt.first {
				t.Fatalf("first part = %q, want %q", got, tt.first)
			}
			releaseOnce()
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading rest: %v", err)
			}
			if string(rest) != tt.rest {
				t.Fatalf("rest = %q, want %q", rest, tt.rest)
			}
		})
	}
}

func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		body   string
	}{
		{name: "get", method: "GET"},
		{name: "post with body", method: "POST", body: `{"card":"secret-body"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil, Options{Upstream: deadURL(t)})
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := b.newRequest(t, tt.method, "/orders/42?token=secret-query", body)
			req.Header.Set("Authorization", "Bearer secret-token")
			req.Header.Set("Cookie", "sid=secret-cookie")
			resp, respBody := b.do(t, req)

			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("status = %d, want 502", resp.StatusCode)
			}
			assertJSONError(t, resp, respBody)
			logs := b.logs.String()
			if !strings.Contains(logs, `"msg":"proxy: upstream request failed"`) || !strings.Contains(logs, `"path":"/orders/42"`) ||
				!strings.Contains(logs, `"level":"WARN"`) {
				t.Errorf("log lacks the failure: %s", logs)
			}
			if strings.Contains(logs, "secret") {
				t.Errorf("log leaks a body, query, token or cookie: %s", logs)
			}
		})
	}
}

// deadURL is the URL of a port nothing listens on any more.
func deadURL(t *testing.T) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return &url.URL{Scheme: "http", Host: addr}
}

func assertJSONError(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Message == "" {
		t.Errorf(`body %q is not {"error":{"message":"..."}} (%v)`, body, err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		upstream string
		wantErr  string // empty: valid
	}{
		{name: "http", upstream: "http://127.0.0.1:3000"},
		{name: "https with base path", upstream: "https://app.internal/base"},
		{name: "other scheme", upstream: "ftp://127.0.0.1:21", wantErr: "scheme must be http or https"},
		{name: "no scheme", upstream: "localhost:3000", wantErr: "scheme must be http or https"},
		{name: "relative", upstream: "/app", wantErr: "scheme must be http or https"},
		{name: "missing host", upstream: "http:///path", wantErr: "host is missing"},
		{name: "credentials", upstream: "http://user:pw@app:3000", wantErr: "credentials"},
		{name: "query", upstream: "http://app:3000/?x=1", wantErr: "no query or fragment"},
		{name: "fragment", upstream: "http://app:3000/#x", wantErr: "no query or fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := url.Parse(tt.upstream)
			if err != nil {
				t.Fatal(err)
			}
			h, err := New(Options{Upstream: u})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New(%s): %v", tt.upstream, err)
			case tt.wantErr == "" && h == nil:
				t.Fatalf("New(%s) returned a nil handler", tt.upstream)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New(%s) error = %v, want one containing %q", tt.upstream, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}
