package delivery

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/netguard"
	"github.com/walhook/walhook/internal/retry"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/store"
)

type nopSink struct{}

func (nopSink) Result(Result)               {}
func (nopSink) Park(string, string)         {}
func (nopSink) Health(store.EndpointHealth) {}

// newSender is a dispatcher whose dialer resolves names with resolver (nil:
// the system's), so tests can point a host name anywhere.
func newSender(t *testing.T, policy netguard.Policy, resolver *net.Resolver) *Dispatcher {
	t.Helper()
	d := New(Options{Workers: 2, EndpointInflight: 1, Timeout: 2 * time.Second, BodyLimit: 100, UserAgent: "walhook",
		Policy: retry.Policy{Schedule: []time.Duration{time.Minute}, MaxAttempts: 5}, Network: policy}, nopSink{})
	if resolver != nil {
		d.client.dial = policy.DialContext(&net.Dialer{Timeout: 2 * time.Second, Resolver: resolver})
	}
	t.Cleanup(func() { d.Stop(time.Second) })
	return d
}

func job(t *testing.T, url, secret string) *Job {
	t.Helper()
	ep, err := route.Compile(&store.Endpoint{ID: "ep_1", URL: url, Secret: secret, Active: true, RetryClientErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	return &Job{DeliveryID: "msg_1", Endpoint: ep, EventID: "evt_1", EventType: "webhook.test", EventTime: time.Now(), Payload: []byte(`{}`)}
}

// resolverTo answers every A query for name with ip, from a DNS server on
// loopback; other names are NXDOMAIN.
func resolverTo(t *testing.T, name string, ip [4]byte) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := answer(buf[:n], name, ip); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp4", pc.LocalAddr().String())
	}}
}

// answer builds the reply to a one-question DNS query.
func answer(q []byte, name string, ip [4]byte) []byte {
	if len(q) < 12 {
		return nil
	}
	var labels []string
	i := 12
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1 : i+3])
	known := strings.EqualFold(strings.Join(labels, "."), name)
	resp := append([]byte{}, q[:i+5]...)
	flags := uint16(0x8400) | uint16(q[2]&1)<<8 // response, authoritative, RD echoed
	if !known {
		flags |= 3 // NXDOMAIN
	}
	binary.BigEndian.PutUint16(resp[2:4], flags)
	binary.BigEndian.PutUint16(resp[6:8], 0)
	binary.BigEndian.PutUint16(resp[8:10], 0)
	binary.BigEndian.PutUint16(resp[10:12], 0)
	if known && qtype == 1 {
		binary.BigEndian.PutUint16(resp[6:8], 1)
		resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ip[0], ip[1], ip[2], ip[3])
	}
	return resp
}

func TestSendRefusesPrivateDestinationsAtConnectTime(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	rebind := resolverTo(t, "hooks.rebind.test", [4]byte{127, 0, 0, 1})
	secret, _ := signature.NewSecret()

	tests := []struct {
		name     string
		policy   netguard.Policy
		resolver *net.Resolver
		url      string
		blocked  string // part of the attempt's error; "" when the request must arrive
	}{
		{"literal loopback", netguard.Policy{}, nil, srv.URL + "/hook", "127.0.0.1 is loopback"},
		{"cloud metadata", netguard.Policy{}, nil, "http://169.254.169.254/latest/meta-data", "is cloud metadata"},
		{"private network", netguard.Policy{}, nil, "http://10.255.255.1/hook", "is private"},
		{"a name that resolves to 127.0.0.1", netguard.Policy{}, rebind, "http://hooks.rebind.test:" + port + "/hook", "127.0.0.1 is loopback"},
		// Control: the same resolver, allowed to reach loopback, arrives.
		{"the same name with allow_private_networks", netguard.Policy{AllowPrivate: true}, rebind, "http://hooks.rebind.test:" + port + "/hook", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			res, err := newSender(t, tt.policy, tt.resolver).Send(job(t, tt.url, secret))
			if err != nil {
				t.Fatal(err)
			}
			if tt.blocked == "" {
				if res.Attempt.StatusCode != 200 || res.Delivery.Status != store.StatusDelivered || hits.Load()-before != 1 {
					t.Fatalf("allowed request: %+v, receiver hit %d times", res, hits.Load()-before)
				}
				return
			}
			if res.Attempt.StatusCode != 0 || !strings.Contains(res.Attempt.Error, "destination address not allowed") ||
				!strings.Contains(res.Attempt.Error, tt.blocked) || res.Delivery.Status != store.StatusFailed {
				t.Fatalf("want a refused connection naming %q, got %+v", tt.blocked, res)
			}
			if n := hits.Load() - before; n != 0 {
				t.Fatalf("the receiver was hit %d times", n)
			}
		})
	}
}

func TestSendSignsAndDoesNotFollowRedirects(t *testing.T) {
	var targetHits atomic.Int64
	var mu sync.Mutex
	var got http.Header
	var body []byte
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got, body = r.Header.Clone(), must(io.ReadAll(r.Body))
		mu.Unlock()
		http.Redirect(w, r, "/internal", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/internal", func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	secret, _ := signature.NewSecret()

	res, err := newSender(t, netguard.Policy{AllowPrivate: true}, nil).Send(job(t, srv.URL+"/hook", secret))
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempt.StatusCode != http.StatusTemporaryRedirect || res.Delivery.Status != store.StatusFailed || res.Delivery.Attempts != 1 || targetHits.Load() != 0 {
		t.Fatalf("redirect: %+v, target hit %d times", res, targetHits.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if err := signature.Verify(secret, got, body, time.Now(), 0); err != nil {
		t.Fatalf("the request does not verify: %v", err)
	}
}

func TestSendAfterStop(t *testing.T) {
	d := newSender(t, netguard.Policy{}, nil)
	d.Stop(time.Second)
	if _, err := d.Send(job(t, "https://example.com/hook", must(signature.NewSecret()))); !errors.Is(err, ErrStopped) {
		t.Fatalf("Send after Stop: %v, want ErrStopped", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}
