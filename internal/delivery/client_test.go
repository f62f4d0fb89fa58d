package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/waitfor"
)

// rawServer answers each request it reads with the next scripted response,
// byte for byte; after a response whose script ends in "<close>" it closes
// the connection. It counts connections and requests.
type rawServer struct {
	ln        net.Listener
	mu        sync.Mutex
	script    []string
	conns     int
	bodies    []string
	headers   []http.Header
	firstDone bool // the first connection has ended
}

func newRawServer(t *testing.T, script ...string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, script: script}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			first := s.conns == 1
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c)
				if first {
					s.mu.Lock()
					s.firstDone = true
					s.mu.Unlock()
				}
			}()
		}
	}()
	return s
}

func (s *rawServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(body))
		s.headers = append(s.headers, req.Header)
		var resp string
		if len(s.script) > 0 {
			resp, s.script = s.script[0], s.script[1:]
		}
		s.mu.Unlock()
		raw, closeAfter := strings.CutSuffix(resp, "<close>")
		if now, later, ok := strings.Cut(raw, "<later>"); ok {
			// Answer, then say something more while idle, and close.
			_, _ = io.WriteString(c, now)
			time.Sleep(1100 * time.Millisecond)
			_, _ = io.WriteString(c, later)
			return
		}
		if resp == "<hang>" {
			_, _ = io.Copy(io.Discard, br) // until the client gives up
			return
		}
		if _, err := io.WriteString(c, raw); err != nil || closeAfter {
			return
		}
	}
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() + "/hook?x=1" }

func (s *rawServer) counts() (conns, requests int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, len(s.bodies)
}

func testPoster() *poster {
	var d net.Dialer
	return newPoster(d.DialContext, nil, 4, 16)
}

func post(t *testing.T, p *poster, url string, body string) (reply, error) {
	t.Helper()
	return p.post(context.Background(), &request{url: url, body: []byte(body), limit: 20,
		headers: [][2]string{{"Content-Type", "application/json"}}}, time.Now().Add(2*time.Second))
}

func TestPosterReadsAnswersAndKeepsConnectionsWhenItCan(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	tests := []struct {
		name        string
		first       string
		wantStatus  int
		wantSnippet string
		wantConns   int // after a second request answered "ok"
	}{
		{"content-length", ok, 200, "ok", 1},
		{"chunked with trailer", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", 201, "hello world", 1},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", 1},
		{"interim 100 first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes", 200, "yes", 1},
		{"connection close", "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 4\r\n\r\nboom<close>", 500, "boom", 2},
		{"HTTP/1.0 to the end", "HTTP/1.0 200 OK\r\n\r\nuntil the end<close>", 200, "until the end", 2},
		{"body over the drain limit", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("é", 50000), 200, strings.Repeat("é", 20), 2},
		{"snippet cut at characters", "HTTP/1.1 400 Bad Request\r\nContent-Length: 30\r\n\r\n" + strings.Repeat("ü", 15), 400, strings.Repeat("ü", 15), 1},
		{"invalid UTF-8 kept storable", "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\na\xffb", 502, "a\uFFFDb", 1},
		{"header names in any case, no reason phrase", "HTTP/1.1 202\r\ncOnTeNt-LeNgTh :  4 \r\nCONNECTION: keep-alive\r\n\r\nsure", 202, "sure", 1},
		{"repeated equal lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nhi", 200, "hi", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRawServer(t, tt.first, ok)
			p := testPoster()
			defer p.closeIdle(true)
			a, err := post(t, p, srv.url(), `{"n":1}`)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != tt.wantStatus || a.snippet != tt.wantSnippet {
				t.Fatalf("status %d, snippet %q; want %d, %q", a.status, a.snippet, tt.wantStatus, tt.wantSnippet)
			}
			if a, err = post(t, p, srv.url(), `{"n":2}`); err != nil || a.status != 200 {
				t.Fatalf("second request: %v, %d", err, a.status)
			}
			conns, reqs := srv.counts()
			if conns != tt.wantConns || reqs != 2 {
				t.Fatalf("%d connections for %d requests; want %d for 2", conns, reqs, tt.wantConns)
			}
		})
	}
}

func TestPosterRefusesWhatIsNotHTTP(t *testing.T) {
	tests := []struct{ name, resp string }{
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n<close>"},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n<close>"},
		{"bad content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n<close>"},
		{"signed content-length", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok<close>"},
		{"conflicting content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok<close>"},
		{"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n<close>"},
		{"status below 100", "HTTP/1.1 099 Odd\r\n\r\n<close>"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\n\r\n<close>"},
		{"unknown transfer-encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n<close>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRawServer(t, tt.resp)
			p := testPoster()
			defer p.closeIdle(true)
			if a, err := post(t, p, srv.url(), `{}`); !errors.Is(err, errMalformed) {
				t.Fatalf("got %+v, %v; want errMalformed", a, err)
			}
		})
	}
}

func TestPosterResendsOnceWhenAKeptConnectionWasClosed(t *testing.T) {
	// The first answer keeps the connection, then the server closes it
	// without reading the next request: the client must notice and use a
	// new connection, and the request arrives once.
	srv := newRawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n<close>", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	p := testPoster()
	defer p.closeIdle(true)
	if _, err := post(t, p, srv.url(), `{"n":1}`); err != nil {
		t.Fatal(err)
	}
	// Whether the close arrives before the write (EPIPE, reset) or after
	// it (EOF before any answer), the request is resent once.
	a, err := post(t, p, srv.url(), `{"n":2}`)
	if err != nil || a.status != 200 {
		t.Fatalf("after the server closed the kept connection: %+v, %v", a, err)
	}
	if conns, reqs := srv.counts(); conns != 2 || reqs != 2 {
		t.Fatalf("%d connections, %d requests; want 2 and 2", conns, reqs)
	}
}

func TestPosterTimesOutAndNeverMixesAnswers(t *testing.T) {
	srv := newRawServer(t, "<hang>", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
	p := testPoster()
	defer p.closeIdle(true)
	_, err := p.post(context.Background(), &request{url: srv.url(), body: []byte(`{}`), limit: 10}, time.Now().Add(200*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	// The timed-out connection was not kept: the next request gets its own
	// answer on a new connection.
	a, err := post(t, p, srv.url(), `{}`)
	if err != nil || a.snippet != "late" {
		t.Fatalf("next request: %+v, %v", a, err)
	}
	if conns, _ := srv.counts(); conns != 2 {
		t.Fatalf("%d connections, want 2", conns)
	}
}

func TestPosterWritesOnlyFramingSafeHeaders(t *testing.T) {
	srv := newRawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	p := testPoster()
	defer p.closeIdle(true)
	_, err := p.post(context.Background(), &request{url: srv.url(), body: []byte(`{"a":1}`), limit: 10,
		headers: [][2]string{{"Webhook-Id", "msg_1"}},
		extra: map[string]string{
			"X-Tenant": "t1", "webhook-id": "forged", "Transfer-Encoding": "chunked", "Connection": "close",
			"X-Injected": "a\r\nX-Evil: 1", "Bad Name": "x", "Content-Length": "1",
		}}, time.Now().Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	h, body := srv.headers[0], srv.bodies[0]
	srv.mu.Unlock()
	if body != `{"a":1}` {
		t.Fatalf("body %q", body)
	}
	if got := h.Values("Webhook-Id"); len(got) != 1 || got[0] != "msg_1" {
		t.Fatalf("Webhook-Id %q; a custom header must not override walhook's", got)
	}
	if h.Get("X-Tenant") != "t1" {
		t.Fatalf("custom header lost: %v", h)
	}
	for _, k := range []string{"X-Evil", "X-Injected", "Transfer-Encoding", "Connection"} {
		if v := h.Get(k); v != "" {
			t.Errorf("%s: %q reached the server", k, v)
		}
	}
}

func TestPosterSpeaksHTTP11OverTLS(t *testing.T) {
	var protos sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		_, _ = io.WriteString(w, "secure")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	var d net.Dialer
	p := newPoster(d.DialContext, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, 2, 2)
	defer p.closeIdle(true)
	for range 2 {
		a, err := post(t, p, srv.URL+"/hook", `{}`)
		if err != nil || a.status != 200 || a.snippet != "secure" {
			t.Fatalf("%+v, %v", a, err)
		}
	}
	if _, ok := protos.Load("HTTP/1.1"); !ok {
		t.Fatal("the server saw no HTTP/1.1 request")
	}
	// A certificate the roots do not trust is refused.
	untrusting := newPoster(d.DialContext, nil, 1, 1)
	if _, err := post(t, untrusting, srv.URL+"/hook", `{}`); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
}

func TestPosterNeverSendsABrokenHead(t *testing.T) {
	srv := newRawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	p := testPoster()
	defer p.closeIdle(true)
	_, err := p.post(context.Background(), &request{url: srv.url(), body: []byte(`{}`), limit: 10,
		headers: [][2]string{{"X-Webhook-Event", "order.x\r\nX-Injected: yes"}}}, time.Now().Add(2*time.Second))
	if !errors.Is(err, errHeader) {
		t.Fatalf("err = %v, want errHeader", err)
	}
	if conns, reqs := srv.counts(); conns != 0 || reqs != 0 {
		t.Fatalf("%d connections, %d requests; nothing may be sent", conns, reqs)
	}
}

func TestPosterSurvivesConnectionsTheServerClosedWhileIdle(t *testing.T) {
	var closed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // so the four requests need four connections
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := testPoster()
	defer p.closeIdle(true)
	round := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if a, err := post(t, p, srv.URL+"/hook", `{}`); err != nil || a.status != 200 {
					errs <- fmt.Errorf("%+v, %v", a, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	round()
	waitfor.True(t, "the server closing the idle connections", 10*time.Second, func() bool { return closed.Load() >= 4 })
	round() // every pooled connection is dead: none of it may fail an attempt
}

func TestPosterDropsAConnectionWithStrayBytes(t *testing.T) {
	// Some proxies answer 408 on an idle connection before closing it: that
	// answer must not become the next request's.
	srv := newRawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n<later>HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
	p := testPoster()
	defer p.closeIdle(true)
	if a, err := post(t, p, srv.url(), `{}`); err != nil || a.status != 200 {
		t.Fatalf("%+v, %v", a, err)
	}
	waitfor.True(t, "the 408 sent", 10*time.Second, func() bool {
		conns, _ := srv.counts()
		return conns == 1 && serverDone(srv)
	})
	if a, err := post(t, p, srv.url(), `{}`); err != nil || a.status != 201 {
		t.Fatalf("second request: %+v, %v; want its own 201", a, err)
	}
}

// serverDone reports whether the raw server's first connection has ended.
func serverDone(s *rawServer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstDone
}

func TestPosterToleratesLongHeadersAndShortBodies(t *testing.T) {
	long := strings.Repeat("a", 10000)
	srv := newRawServer(t,
		"HTTP/1.1 200 OK\r\nSet-Cookie: x="+long+"\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nab<close>",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	p := testPoster()
	defer p.closeIdle(true)
	if a, err := post(t, p, srv.url(), `{}`); err != nil || a.status != 200 || a.snippet != "ok" {
		t.Fatalf("a 10 kB header line: %+v, %v", a, err)
	}
	if a, err := post(t, p, srv.url(), `{}`); err != nil || a.status != 200 || a.snippet != "ab" {
		t.Fatalf("a body cut short: %+v, %v (the status stands)", a, err)
	}
	if a, err := post(t, p, srv.url(), `{}`); err != nil || a.snippet != "ok" {
		t.Fatalf("after a short body: %+v, %v", a, err)
	}
	if conns, _ := srv.counts(); conns != 2 {
		t.Fatalf("%d connections; the one with a short body must not be reused", conns)
	}
}

// BenchmarkPost compares the poster with net/http's client on the same
// keep-alive loopback server and a 1 KB body, 8 requests under way at a
// time like an endpoint's lane. The server's share is the same in both, so
// the difference is the client's. cpu-µs/op is the process's CPU (user and
// system, client and server) per request.
func BenchmarkPost(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	body := []byte(`{"type":"order.created","data":{"pad":"` + strings.Repeat("x", 1000) + `"}}`)
	headers := [][2]string{{"Content-Type", "application/json"}, {"Webhook-Id", "msg_1"}, {"Webhook-Timestamp", "1732421893"},
		{"Webhook-Signature", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="}}
	b.Run("poster", func(b *testing.B) {
		var d net.Dialer
		p := newPoster(d.DialContext, nil, 8, 8)
		defer p.closeIdle(true)
		b.ReportAllocs()
		b.SetParallelism(4) // 8 goroutines on 2 cores
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				a, err := p.post(context.Background(), &request{url: srv.URL + "/hook", headers: headers, body: body, limit: 1000},
					time.Now().Add(5*time.Second))
				if err != nil || a.status != http.StatusNoContent {
					b.Error(a, err)
					return
				}
			}
		})
	})
	b.Run("net/http", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
		defer client.CloseIdleConnections()
		b.ReportAllocs()
		b.SetParallelism(4)
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/hook", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					cancel()
					return
				}
				for _, h := range headers {
					req.Header[h[0]] = []string{h[1]}
				}
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusNoContent {
					b.Error(resp, err)
					cancel()
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cancel()
			}
		})
	})
}

// reportCPU reports, when the returned function is called, the process's
// CPU time per benchmark iteration.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64((cpu()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}
