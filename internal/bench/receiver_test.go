package bench

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/waitfor"
)

// testReceiver starts a receiver with a fresh secret and returns it with a
// signer for that secret and its close, which may be called before the
// test's end.
func testReceiver(t *testing.T, opts receiverOptions) (*receiver, *signature.Signer, func()) {
	t.Helper()
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	opts.Clock = clock{base: time.Now()}
	rc, err := newReceiver(opts)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeRC := func() { once.Do(rc.close) }
	t.Cleanup(closeRC)
	if err := rc.setSecret(secret); err != nil {
		t.Fatal(err)
	}
	signer, err := signature.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	return rc, signer, closeRC
}

// hostOf is the receiver's host:port.
func hostOf(t *testing.T, rc *receiver) string {
	t.Helper()
	u, err := url.Parse(rc.url)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// webhookRequest is a signed webhook for event seq, as walhook sends it.
func webhookRequest(t *testing.T, signer *signature.Signer, target, id string, seq int) *http.Request {
	t.Helper()
	body := []byte(`{"type":"bench.event","timestamp":"2026-11-24T00:00:00Z","data":{"seq": ` + strconv.Itoa(seq) + `, "padding": "xx"}}`)
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	signer.Sign(id, time.Now(), body).SetHeaders(req.Header)
	return req
}

// TestReceiversBookWebhooksAlike checks that both receiver servers answer
// and book signed webhooks, retries of them and raw requests the same way.
func TestReceiversBookWebhooksAlike(t *testing.T) {
	for _, server := range []string{ServerLean, ServerNetHTTP} {
		t.Run(server, func(t *testing.T) {
			rc, signer, _ := testReceiver(t, receiverOptions{Server: server, Verify: true})
			client := &http.Client{Timeout: 5 * time.Second}
			send := func(req *http.Request) int {
				t.Helper()
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}

			for i, req := range []*http.Request{
				webhookRequest(t, signer, rc.url, "msg_1", 1),
				webhookRequest(t, signer, rc.url, "msg_2", 2),
				webhookRequest(t, signer, rc.url, "msg_1", 1), // the same delivery again
			} {
				if code := send(req); code != http.StatusNoContent {
					t.Fatalf("request %d: status %d, want 204", i, code)
				}
			}
			forged := webhookRequest(t, signer, rc.url, "msg_3", 3)
			forged.Header.Set(signature.HeaderSignature, "v1,AAAA")
			if code := send(forged); code != http.StatusNoContent {
				t.Fatalf("forged request: status %d, want 204 (counted, not refused)", code)
			}
			raw, _ := http.NewRequest(http.MethodPost, rc.url, strings.NewReader(`{"x":1}`))
			raw.Header.Set(rawHeader, "1")
			if code := send(raw); code != http.StatusNoContent {
				t.Fatalf("raw request: status %d, want 204", code)
			}

			hits, counts := rc.hits()
			want := receiverCounts{Requests: 4, DuplicateOK: 1, BadSignatures: 1}
			if counts != want {
				t.Errorf("counts %+v, want %+v", counts, want)
			}
			if len(hits) != 3 || hits[1].requests != 2 || hits[2].requests != 1 || hits[1].okAt == 0 {
				t.Errorf("hits %+v, want seq 1 twice and 2 and 3 once, answered", hits)
			}
			if got := rc.okDistinct.Load(); got != 3 {
				t.Errorf("okDistinct %d, want 3", got)
			}
			if got := rc.raw.Load(); got != 1 {
				t.Errorf("raw requests %d, want 1", got)
			}
		})
	}
}

// TestLeanServerRefusesWhatItCannotServe checks the lean server's answers to
// requests outside what it serves: a sender sending them is a bug the bench
// must show.
func TestLeanServerRefusesWhatItCannotServe(t *testing.T) {
	cases := []struct {
		name, request string
		wantStatus    string
		wantClosed    bool
		unparsable    int64
	}{
		{
			name:       "keep-alive request without a body",
			request:    "POST /hook HTTP/1.1\r\nHost: x\r\nX-Bench-Raw: 1\r\n\r\n",
			wantStatus: "HTTP/1.1 204 No Content",
		},
		{
			name:       "HTTP/1.0 is answered, then closed",
			request:    "POST /hook HTTP/1.0\r\nX-Bench-Raw: 1\r\nContent-Length: 2\r\n\r\n{}",
			wantStatus: "HTTP/1.1 204 No Content",
			wantClosed: true,
		},
		{
			name:       "Connection: close is answered, then closed",
			request:    "POST /hook HTTP/1.1\r\nconnection: Close\r\nx-bench-raw: 1\r\ncontent-length: 2\r\n\r\n{}",
			wantStatus: "HTTP/1.1 204 No Content",
			wantClosed: true,
		},
		{
			name:       "chunked body",
			request:    "POST /hook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
			wantStatus: "HTTP/1.1 501 Not Implemented",
			wantClosed: true,
			unparsable: 1,
		},
		{
			name:       "not HTTP",
			request:    "hello\r\n",
			wantStatus: "HTTP/1.1 400 Bad Request",
			wantClosed: true,
			unparsable: 1,
		},
		{
			name:       "bad Content-Length",
			request:    "POST /hook HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
			wantStatus: "HTTP/1.1 400 Bad Request",
			wantClosed: true,
			unparsable: 1,
		},
		{
			name:       "unsigned webhook is booked as unparsable, and answered",
			request:    "POST /hook HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
			wantStatus: "HTTP/1.1 204 No Content",
			unparsable: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, _, _ := testReceiver(t, receiverOptions{Server: ServerLean})
			c, err := net.Dial("tcp", hostOf(t, rc))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Proto + " " + resp.Status; got != tc.wantStatus {
				t.Errorf("answer %q, want %q", got, tc.wantStatus)
			}
			// A connection kept alive serves the next request; a closed one
			// reads EOF.
			_, _ = io.WriteString(c, "POST /hook HTTP/1.1\r\nX-Bench-Raw: 1\r\n\r\n")
			_, err = http.ReadResponse(br, nil)
			if closed := err != nil; closed != tc.wantClosed {
				t.Errorf("closed after the answer: %v (%v), want %v", closed, err, tc.wantClosed)
			}
			if _, counts := rc.hits(); counts.Unparsable != tc.unparsable {
				t.Errorf("unparsable %d, want %d", counts.Unparsable, tc.unparsable)
			}
		})
	}
}

// TestLeanServerHangsUntilTheSenderGivesUp checks a hanging endpoint: the
// request is never answered, the connection is held until the sender closes
// it, and closing the server does not wait for anything else.
func TestLeanServerHangsUntilTheSenderGivesUp(t *testing.T) {
	rc, signer, closeRC := testReceiver(t, receiverOptions{Server: ServerLean, Hang: true})
	client := &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := client.Do(webhookRequest(t, signer, rc.url, "msg_1", 1))
	if err == nil {
		t.Fatal("a hanging receiver answered")
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("gave up after %s, before the client's timeout", waited)
	}
	if n := rc.requestCount(); n != 1 {
		t.Errorf("requests %d, want 1", n)
	}
	// A second request is held too, and the server's close releases it.
	c, err := net.Dial("tcp", hostOf(t, rc))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /hook HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, "the second request read and held", 5*time.Second, func() bool { return rc.requestCount() == 2 })
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		closeRC()
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not release a held connection")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("held connection read %d bytes, %v; want it closed without an answer", n, err)
	}
}

// TestLeanServerDoesNotBookASenderGoneMidHead checks that a connection that
// ends in the middle of a request head is not booked as a request.
func TestLeanServerDoesNotBookASenderGoneMidHead(t *testing.T) {
	rc, _, closeRC := testReceiver(t, receiverOptions{Server: ServerLean})
	c, err := net.Dial("tcp", hostOf(t, rc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "POST /hook HTTP/1.1\r\nContent-Le"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	closeRC() // waits for the connection's goroutine
	if _, counts := rc.hits(); counts != (receiverCounts{}) {
		t.Errorf("counts %+v after a sender gone mid-head, want none", counts)
	}
}
