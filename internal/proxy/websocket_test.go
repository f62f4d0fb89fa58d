package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Just enough RFC 6455 for an echo: single-frame messages, no extensions.
const (
	wsGUID   = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
)

func wsAccept(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestWSAcceptMatchesRFC(t *testing.T) {
	t.Parallel()
	// RFC 6455 section 1.3.
	if got, want := wsAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Fatalf("wsAccept = %q, want %q", got, want)
	}
}

// writeFrame writes one final frame; clients must mask, servers must not.
func writeFrame(w io.Writer, op byte, payload []byte, mask bool) error {
	hdr := []byte{0x80 | op, 0}
	var maskBit byte
	if mask {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		hdr[1] = maskBit | byte(n)
	case n <= 0xFFFF:
		hdr[1] = maskBit | 126
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr[1] = maskBit | 127
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	data := payload
	if mask {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		hdr = append(hdr, key[:]...)
		data = make([]byte, len(payload))
		for i, c := range payload {
			data[i] = c ^ key[i%4]
		}
	}
	_, err := w.Write(append(hdr, data...))
	return err
}

func readFrame(r io.Reader) (op byte, payload []byte, masked bool, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, false, err
	}
	if h[0]&0x80 == 0 {
		return 0, nil, false, errors.New("fragmented frame")
	}
	op, masked = h[0]&0x0F, h[1]&0x80 != 0
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, nil, false, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, nil, false, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > 1<<20 {
		return 0, nil, false, fmt.Errorf("frame of %d bytes", n)
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, false, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, false, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return op, payload, masked, nil
}

// wsUpgrade is what the echo app saw of the handshake.
type wsUpgrade struct {
	uri, host, forwardedFor string
}

// wsEchoApp accepts a websocket handshake, reports it on handshakes, and
// echoes every frame (unmasked, as a server must) until a close frame, which
// it echoes too. done is closed when the hijacked connection is closed.
func wsEchoApp(t *testing.T, handshakes chan<- wsUpgrade, done chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-WebSocket-Key")
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
			!strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") ||
			r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
			http.Error(w, "not a websocket handshake", http.StatusBadRequest)
			return
		}
		handshakes <- wsUpgrade{r.RequestURI, r.Host, r.Header.Get("X-Forwarded-For")}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer close(done)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(key))
		if err := brw.Flush(); err != nil {
			t.Errorf("app handshake: %v", err)
			return
		}
		for {
			op, payload, masked, err := readFrame(brw)
			if err != nil {
				t.Errorf("app read: %v", err)
				return
			}
			if !masked {
				t.Errorf("app got an unmasked client frame")
				return
			}
			if err := writeFrame(brw, op, payload, false); err != nil || brw.Flush() != nil {
				t.Errorf("app echo: %v", err)
				return
			}
			if op == opClose {
				return
			}
		}
	})
}

func TestWebSocket(t *testing.T) {
	t.Parallel()
	handshakes := make(chan wsUpgrade, 1)
	appDone := make(chan struct{})
	b := setup(t, wsEchoApp(t, handshakes, appDone), Options{})

	conn, err := net.Dial("tcp", b.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET /cable?room=7 HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d (%s), want 101", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Upgrade"); !strings.EqualFold(got, "websocket") {
		t.Errorf("Upgrade = %q, want websocket", got)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), wsAccept(key); got != want {
		t.Errorf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	hs := <-handshakes // sent before the 101, so already there
	if want := (wsUpgrade{"/cable?room=7", "chat.example.com", "127.0.0.1"}); hs != want {
		t.Errorf("app saw handshake %+v, want %+v", hs, want)
	}

	for _, m := range []struct {
		name    string
		op      byte
		payload []byte
	}{
		{"text", opText, []byte("hello")},
		{"binary with 16-bit length", opBinary, bytes.Repeat([]byte{0, 1, 2, 0xFF}, 300)},
		{"close", opClose, []byte{0x03, 0xE8}}, // 1000: normal closure
	} {
		if err := writeFrame(conn, m.op, m.payload, true); err != nil {
			t.Fatalf("%s: write: %v", m.name, err)
		}
		op, payload, masked, err := readFrame(br)
		if err != nil {
			t.Fatalf("%s: read echo: %v", m.name, err)
		}
		if op != m.op || masked || !bytes.Equal(payload, m.payload) {
			t.Fatalf("%s: echo = op %d masked %v %d bytes, want op %d unmasked %d bytes",
				m.name, op, masked, len(payload), m.op, len(m.payload))
		}
	}
	conn.Close()
	select {
	case <-appDone:
	case <-time.After(10 * time.Second):
		t.Fatal("app connection still open after the client closed")
	}
}
