package netguard

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// newClient returns an http.Client whose transport dials through the
// policy. No proxy is configured (Transport.Proxy is nil).
func newClient(t *testing.T, p Policy, d *net.Dialer) *http.Client {
	t.Helper()
	if d == nil {
		d = &net.Dialer{}
	}
	d.Timeout = 5 * time.Second
	d.KeepAlive = 30 * time.Second
	tr := &http.Transport{DialContext: p.DialContext(d), DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: NoRedirects, Timeout: 10 * time.Second}
}

// countingServer is an httptest server on 127.0.0.1 that counts requests.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestControl(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		network string
		address string
		allowed bool
	}{
		{"public tcp4", Policy{}, "tcp4", "8.8.8.8:443", true},
		{"public tcp6", Policy{}, "tcp6", "[2606:4700:4700::1111]:443", true},
		{"loopback tcp4", Policy{}, "tcp4", "127.0.0.1:80", false},
		{"loopback tcp6", Policy{}, "tcp6", "[::1]:80", false},
		{"mapped loopback tcp6", Policy{}, "tcp6", "[::ffff:127.0.0.1]:80", false},
		{"metadata", Policy{}, "tcp4", "169.254.169.254:80", false},
		{"link-local zoned", Policy{}, "tcp6", "[fe80::1%eth0]:80", false},
		{"private udp", Policy{}, "udp4", "10.0.0.1:53", false},
		{"loopback with AllowPrivate", Policy{AllowPrivate: true}, "tcp4", "127.0.0.1:80", true},
		{"unspecified with AllowPrivate", Policy{AllowPrivate: true}, "tcp4", "0.0.0.0:80", false},
		{"unix socket fails closed", Policy{AllowPrivate: true}, "unix", "/var/run/docker.sock", false},
		{"unparsable fails closed", Policy{AllowPrivate: true}, "tcp", "example.com:80", false},
		{"missing port fails closed", Policy{AllowPrivate: true}, "tcp4", "8.8.8.8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Control(tt.network, tt.address, nil)
			if tt.allowed && err != nil {
				t.Fatalf("Control(%q, %q) = %v, want allowed", tt.network, tt.address, err)
			}
			if !tt.allowed && !errors.Is(err, ErrBlocked) {
				t.Fatalf("Control(%q, %q) = %v, want ErrBlocked", tt.network, tt.address, err)
			}
		})
	}
}

func TestDialLiteralIP(t *testing.T) {
	srv, hits := countingServer(t)
	tests := []struct {
		name    string
		policy  Policy
		allowed bool
	}{
		{"strict policy refuses 127.0.0.1", Policy{}, false},
		{"AllowPrivate reaches 127.0.0.1", Policy{AllowPrivate: true}, true},
		{"AllowCIDRs exception reaches 127.0.0.1", Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			resp, err := newClient(t, tt.policy, nil).Get(srv.URL + "/hook")
			if !tt.allowed {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request to %s succeeded (status %d), want ErrBlocked", srv.URL, resp.StatusCode)
				}
				if !errors.Is(err, ErrBlocked) {
					t.Fatalf("err = %v, want errors.Is ErrBlocked", err)
				}
				if !strings.Contains(err.Error(), "127.0.0.1 is loopback") {
					t.Errorf("error %q should name the address and class", err)
				}
				if n := hits.Load() - before; n != 0 {
					t.Fatalf("server was hit %d times despite the block", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
			}
			if n := hits.Load() - before; n != 1 {
				t.Fatalf("server hit %d times, want 1", n)
			}
		})
	}
}

// startDNS runs a minimal UDP DNS server on 127.0.0.1 answering A queries
// for the names in records (fully qualified, lower case) and NXDOMAIN for
// everything else; other query types for known names get an empty NOERROR.
// It returns the server address and a counter of received queries.
func startDNS(t *testing.T, records map[string]netip.Addr) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var queries atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			queries.Add(1)
			if resp := dnsReply(buf[:n], records); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	return pc.LocalAddr().String(), &queries
}

// dnsReply builds the response to a single-question DNS query.
func dnsReply(req []byte, records map[string]netip.Addr) []byte {
	if len(req) < 12 || binary.BigEndian.Uint16(req[4:6]) != 1 {
		return nil
	}
	var labels []string
	i := 12
	for {
		if i >= len(req) {
			return nil
		}
		l := int(req[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(req) {
			return nil
		}
		labels = append(labels, string(req[i:i+l]))
		i += l
	}
	if i+4 > len(req) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(req[i : i+2])
	question := req[12 : i+4]
	addr, known := records[strings.ToLower(strings.Join(labels, "."))+"."]

	flags := uint16(0x8000 | 0x0400 | 0x0080) // QR, AA, RA
	flags |= uint16(req[2]&0x01) << 8         // echo RD
	if !known {
		flags |= 3 // NXDOMAIN
	}
	var ancount uint16
	if known && qtype == 1 && addr.Is4() {
		ancount = 1
	}
	resp := make([]byte, 12, 64)
	copy(resp[0:2], req[0:2]) // ID
	binary.BigEndian.PutUint16(resp[2:4], flags)
	binary.BigEndian.PutUint16(resp[4:6], 1) // QDCOUNT
	binary.BigEndian.PutUint16(resp[6:8], ancount)
	resp = append(resp, question...)
	if ancount == 1 {
		ip := addr.As4()
		resp = append(resp,
			0xc0, 0x0c, // name: pointer to the question name
			0x00, 0x01, // TYPE A
			0x00, 0x01, // CLASS IN
			0x00, 0x00, 0x00, 0x3c, // TTL 60
			0x00, 0x04, // RDLENGTH
			ip[0], ip[1], ip[2], ip[3])
	}
	return resp
}

// TestDialRebinding proves the check happens on the resolved address at
// connect time: rebind.test passes CheckURL (no lookup is made), but its
// DNS answer is 127.0.0.1, so the dial is refused.
func TestDialRebinding(t *testing.T) {
	srv, hits := countingServer(t)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr, queries := startDNS(t, map[string]netip.Addr{"rebind.test.": netip.MustParseAddr("127.0.0.1")})
	resolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp4", dnsAddr)
		},
	}
	target := fmt.Sprintf("http://rebind.test:%s/hook", port)

	tests := []struct {
		name    string
		policy  Policy
		allowed bool
	}{
		{"strict policy refuses rebound name at dial time", Policy{}, false},
		{"AllowPrivate follows the resolver to the test server", Policy{AllowPrivate: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q0, h0 := queries.Load(), hits.Load()
			if _, err := tt.policy.CheckURL(target, false); err != nil {
				t.Fatalf("CheckURL(%q) = %v, want ok (the name is not resolved at validation time)", target, err)
			}
			if q := queries.Load() - q0; q != 0 {
				t.Fatalf("CheckURL made %d DNS queries, want none", q)
			}

			resp, err := newClient(t, tt.policy, &net.Dialer{Resolver: resolver}).Get(target)
			if q := queries.Load() - q0; q == 0 {
				t.Errorf("the dial made no DNS queries; the test resolver was not used")
			}
			if !tt.allowed {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request to %s succeeded (status %d), want ErrBlocked", target, resp.StatusCode)
				}
				if !errors.Is(err, ErrBlocked) {
					t.Fatalf("err = %v, want errors.Is ErrBlocked", err)
				}
				if n := hits.Load() - h0; n != 0 {
					t.Fatalf("server was hit %d times despite the block", n)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if n := hits.Load() - h0; n != 1 {
				t.Fatalf("server hit %d times, want 1", n)
			}
		})
	}
}

func TestNoRedirects(t *testing.T) {
	if err := NoRedirects(nil, nil); err != http.ErrUseLastResponse {
		t.Fatalf("NoRedirects = %v, want http.ErrUseLastResponse", err)
	}

	var targetHits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		io.WriteString(w, "target")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tests := []struct {
		name          string
		checkRedirect func(*http.Request, []*http.Request) error
		wantStatus    int
		wantTargetHit bool
	}{
		{"NoRedirects returns the 302 itself", NoRedirects, http.StatusFound, false},
		// Control case: proves the server really redirects, so the case
		// above would fail if NoRedirects followed it.
		{"default policy follows the redirect", nil, http.StatusOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := targetHits.Load()
			c := newClient(t, Policy{AllowPrivate: true}, nil)
			c.CheckRedirect = tt.checkRedirect
			resp, err := c.Get(srv.URL + "/start")
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusFound && resp.Header.Get("Location") != "/target" {
				t.Errorf("Location = %q, want /target", resp.Header.Get("Location"))
			}
			if hit := targetHits.Load() > before; hit != tt.wantTargetHit {
				t.Fatalf("redirect target hit = %v, want %v", hit, tt.wantTargetHit)
			}
		})
	}
}

func TestDialContextKeepsDialerSettings(t *testing.T) {
	srv, _ := countingServer(t)
	var calls atomic.Int64
	orig := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		calls.Add(1)
		return nil
	}}

	tests := []struct {
		name      string
		policy    Policy
		wantCalls int64
		wantErr   bool
	}{
		{"blocked dial does not reach the caller's Control", Policy{}, 0, true},
		{"allowed dial chains to the caller's Control", Policy{AllowPrivate: true}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			dial := tt.policy.DialContext(orig)
			conn, err := dial(context.Background(), "tcp", srv.Listener.Addr().String())
			if conn != nil {
				conn.Close()
			}
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrBlocked)) {
				t.Fatalf("dial error = %v, want blocked=%v", err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Fatalf("caller's Control called %d times, want %d", got, tt.wantCalls)
			}
			if orig.ControlContext != nil {
				t.Fatal("DialContext modified the caller's dialer")
			}
		})
	}
}
