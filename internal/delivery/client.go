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
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/walhook/walhook/internal/netguard"
)

// poster is the HTTP/1.1 client that sends webhook POSTs.
//
// net/http's Transport hands every request to a writing goroutine and every
// answer back from a reading one, with a timer and some thirty allocations
// per round trip; at tens of thousands of small requests per second that
// costs more CPU than the request itself. A webhook needs little of what it
// offers: no proxy, no redirects, no compression, no HTTP/2 multiplexing
// (each endpoint already has its own connections, one per in-flight slot).
// So the request is written with one Write and its answer read in the
// attempt's own goroutine, on a pooled keep-alive connection, under one
// deadline for the whole attempt. TLS is crypto/tls with ALPN http/1.1.
type poster struct {
	dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	tls          *tls.Config // base configuration; ServerName is set per host
	maxIdle      int         // idle connections kept per host
	maxIdleTotal int         // and in all
	idleTimeout  time.Duration

	mu        sync.Mutex
	idle      map[string][]*pconn // target key → idle connections, most recent last
	nidle     int
	lastSweep time.Time
	closed    bool
	targets   sync.Map // raw URL → *target
	ntargets  atomic.Int64
}

// target is a parsed endpoint URL.
type target struct {
	key        string // scheme and address: connections are pooled by it
	addr       string // host:port to dial
	tls        *tls.Config
	host       string // Host header
	requestURI string
}

// pconn is a connection with its reader and a reusable request buffer.
type pconn struct {
	net.Conn
	raw    syscall.RawConn // the TCP socket under TLS, to check it is still open
	br     *bufio.Reader
	buf    []byte
	idleAt time.Time
	// watched is the context whose end cuts this connection's requests
	// short (the dispatcher's, in practice: watching it once per
	// connection, not once per request, saves an AfterFunc and three
	// allocations per request); cut says it ended.
	watched context.Context
	unwatch func() bool
	cut     atomic.Bool
}

// watch makes the end of ctx cut the connection's requests short through
// its deadline; a cut connection is never reused.
func (c *pconn) watch(ctx context.Context) {
	if c.watched == ctx {
		return
	}
	if c.unwatch != nil {
		c.unwatch()
	}
	c.watched = ctx
	c.unwatch = context.AfterFunc(ctx, func() {
		c.cut.Store(true)
		_ = c.SetDeadline(time.Unix(1, 0))
	})
}

// Close closes the connection and stops watching its context.
func (c *pconn) Close() error {
	if c.unwatch != nil {
		c.unwatch()
	}
	return c.Conn.Close()
}

// reply is what the client keeps of a response.
type reply struct {
	status     int
	retryAfter string
	snippet    string
}

// drainLimit is how much of an unread body is read to keep the connection;
// beyond it the connection is closed instead.
const drainLimit = 64 << 10

// hopHeaders frame or route the request: an endpoint's custom headers never
// set them (the API refuses most; these are refused here too).
var hopHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"keep-alive": true, "te": true, "trailer": true, "upgrade": true, "proxy-connection": true,
}

// idleCheck is how long a connection may sit idle before it is checked
// for a close by the server before reuse (servers close idle connections
// after a few seconds: Node after 5s, many proxies after 60s).
const idleCheck = time.Second

func newPoster(dial func(ctx context.Context, network, addr string) (net.Conn, error), base *tls.Config, maxIdle, maxIdleTotal int) *poster {
	if base == nil {
		base = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &poster{dial: dial, tls: base, maxIdle: max(maxIdle, 1), maxIdleTotal: max(maxIdleTotal, maxIdle, 1),
		idleTimeout: 90 * time.Second, idle: map[string][]*pconn{}, lastSweep: time.Now()}
}

// targetOf parses and caches an endpoint URL.
func (p *poster) targetOf(raw string) (*target, error) {
	if t, ok := p.targets.Load(raw); ok {
		return t.(*target), nil
	}
	// A copy: the map keeps it, and the caller's string then does not leak.
	// Escape analysis does not tell a struct's fields apart, so a leaked
	// r.url would move the array behind r.headers to the heap too.
	return p.newTarget(strings.Clone(raw))
}

func (p *poster) newTarget(raw string) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse endpoint URL: %w", err)
	}
	hostname := netguard.ASCIIHost(u.Hostname())
	t := &target{host: netguard.ASCIIHost(u.Host), requestURI: u.RequestURI()}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		t.tls = p.tls.Clone()
		t.tls.ServerName = hostname
		t.tls.NextProtos = []string{"http/1.1"}
	default:
		return nil, fmt.Errorf("endpoint URL scheme %q is not http or https", u.Scheme)
	}
	if hostname == "" {
		return nil, errors.New("endpoint URL has no host")
	}
	t.addr = net.JoinHostPort(hostname, port)
	t.key = u.Scheme + "://" + t.addr
	if p.ntargets.Load() < 100_000 { // a bound against URLs that change all the time
		if _, loaded := p.targets.LoadOrStore(raw, t); !loaded {
			p.ntargets.Add(1)
		}
	}
	return t, nil
}

// request is one POST to make.
type request struct {
	url     string
	headers [][2]string // in order; names as given
	extra   map[string]string
	body    []byte
	limit   int // characters of the response body kept
}

// post sends the request and reads the answer. A connection taken from the
// pool that turns out closed by the server before answering is replaced by
// the next one, or a new one: the request was not processed (an
// at-least-once sender may resend in any case; the webhook-id stays the
// same). Each such try uses up one dead connection, so it ends. The
// deadline is an argument, not a field of r: SetDeadline keeps it, and
// keeping part of *r would move every request (and its headers) to the
// heap.
func (p *poster) post(ctx context.Context, r *request, deadline time.Time) (reply, error) {
	t, err := p.targetOf(r.url)
	if err != nil {
		return reply{}, err
	}
	// walhook's own headers must be valid (an event type is checked when it
	// is streamed; this is the last line of defence), before anything is
	// dialed or sent.
	for _, h := range r.headers {
		if !validValue(h[1]) {
			return reply{}, fmt.Errorf("%w: %s", errHeader, h[0])
		}
	}
	for {
		c, reused, err := p.conn(ctx, t, deadline)
		if err != nil {
			return reply{}, err
		}
		a, keep, started, err := p.roundTrip(ctx, c, t, r, deadline)
		if err == nil && keep {
			p.put(t, c)
		} else {
			c.Close()
		}
		if err != nil && reused && !started && isReset(err) && ctx.Err() == nil {
			continue
		}
		return a, err
	}
}

// conn takes an idle connection or dials one.
func (p *poster) conn(ctx context.Context, t *target, deadline time.Time) (*pconn, bool, error) {
	now := time.Now()
	p.mu.Lock()
	for list := p.idle[t.key]; len(list) > 0; list = p.idle[t.key] {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[t.key] = list[:len(list)-1]
		p.nidle--
		idle := now.Sub(c.idleAt)
		if idle < idleCheck || idle < p.idleTimeout && c.open() {
			p.mu.Unlock()
			return c, true, nil
		}
		c.Close()
	}
	p.mu.Unlock()
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	nc, err := p.dial(dctx, "tcp", t.addr)
	if err != nil {
		return nil, false, fmt.Errorf("dial: %w", err)
	}
	if t.tls != nil {
		tc := tls.Client(nc, t.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, false, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	c := &pconn{Conn: nc, br: bufio.NewReaderSize(nc, 4096)}
	if sc, ok := rawConn(nc).(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	return c, false, nil
}

// rawConn is the network connection under TLS.
func rawConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

// open reports whether an idle connection can still be used: the server
// has neither closed it nor sent anything (an idle HTTP/1.1 connection
// receives nothing; some servers send a 408 before closing).
func (c *pconn) open() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	return socketOpen(c.raw)
}

// put returns a connection to the pool, or closes it if the pool is full.
// Now and then it closes the connections idle too long, so hosts no longer
// called do not keep theirs.
func (p *poster) put(t *target, c *pconn) {
	now := time.Now()
	c.idleAt = now
	var stale []*pconn
	p.mu.Lock()
	if !p.closed && len(p.idle[t.key]) < p.maxIdle && p.nidle < p.maxIdleTotal {
		p.idle[t.key] = append(p.idle[t.key], c)
		p.nidle++
		c = nil
	}
	if now.Sub(p.lastSweep) > p.idleTimeout/3 {
		p.lastSweep = now
		for key, list := range p.idle {
			kept := list[:0]
			for _, ic := range list {
				if now.Sub(ic.idleAt) < p.idleTimeout {
					kept = append(kept, ic)
				} else {
					stale = append(stale, ic)
				}
			}
			clear(list[len(kept):])
			if p.idle[key] = kept; len(kept) == 0 {
				delete(p.idle, key)
			}
		}
		p.nidle -= len(stale)
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
	for _, ic := range stale {
		ic.Close()
	}
}

// closeIdle closes the pooled connections; with stop, later ones too.
func (p *poster) closeIdle(stop bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*pconn{}
	p.nidle = 0
	p.closed = p.closed || stop
	p.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.Close()
		}
	}
}

// roundTrip writes the request and reads the answer on c. keep says whether
// c may be reused; started whether the server sent anything back.
func (p *poster) roundTrip(ctx context.Context, c *pconn, t *target, r *request, deadline time.Time) (a reply, keep, started bool, err error) {
	// Head and body in the connection's buffer, for one Write.
	c.buf = append(appendHead(c.buf[:0], t, r), r.body...)
	if err := c.SetDeadline(deadline); err != nil {
		return a, false, false, fmt.Errorf("set deadline: %w", err)
	}
	// Stopping cuts the attempt short through the deadline; a connection
	// it touched is not reused. Checked after setting ours: a cut that
	// came before it would otherwise be undone.
	c.watch(ctx)
	defer func() {
		if c.cut.Load() {
			keep = false
		}
	}()
	if c.cut.Load() {
		return a, false, false, errCut
	}

	_, werr := c.Write(c.buf)
	if cap(c.buf) > 64<<10 {
		c.buf = nil // one huge payload does not pin its buffer to the connection
	}
	a, keep, started, err = readAnswer(c.br, r.limit)
	switch {
	case werr != nil && err == nil:
		// The server answered before reading the whole request (a 413,
		// say): its answer stands, the connection does not.
		return a, false, true, nil
	case werr != nil:
		return a, false, started, fmt.Errorf("write request: %w", werr)
	case err != nil:
		return a, false, started, fmt.Errorf("read response: %w", err)
	}
	// Anything after the answer is not for the next request.
	return a, keep && c.br.Buffered() == 0, true, nil
}

// errCut is a request on a connection whose watched context ended.
var errCut = errors.New("connection cut short by shutdown")

// errHeader is a header value that would break the request's framing.
var errHeader = errors.New("header value contains a line break or control character")

// appendHead appends the request's head: request line and headers.
// walhook's own headers were checked by post; an endpoint's custom ones
// that are not valid, or that would frame or route the request, are left
// out.
func appendHead(b []byte, t *target, r *request) []byte {
	b = append(b, "POST "...)
	b = append(b, t.requestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.host...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(r.body)), 10)
	b = append(b, "\r\n"...)
	for k, v := range r.extra {
		if hopHeaders[strings.ToLower(k)] || !validName(k) || !validValue(v) || setByWalhook(r.headers, k) {
			continue
		}
		b = appendHeader(b, k, v)
	}
	for _, h := range r.headers {
		b = appendHeader(b, h[0], h[1])
	}
	return append(b, "\r\n"...)
}

func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

// setByWalhook reports whether walhook sets header k itself: a custom
// header never overrides it.
func setByWalhook(headers [][2]string, k string) bool {
	for _, h := range headers {
		if strings.EqualFold(h[0], k) {
			return true
		}
	}
	return false
}

// validName is a header name's token syntax (RFC 9110).
func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validValue refuses control characters (a tab excepted), which could end
// the header or the request.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// errMalformed is an answer that is not HTTP/1.x.
var errMalformed = errors.New("malformed HTTP response")

// readAnswer reads a response: status, the headers that matter, and the
// body's first limit characters; the rest of the body is read and thrown
// away up to drainLimit so the connection can be reused.
func readAnswer(br *bufio.Reader, limit int) (a reply, keep, started bool, err error) {
	var (
		contentLength int64 = -1
		chunked       bool
		close10       bool
		headBytes     int
	)
	for {
		line, err := readLine(br, &headBytes)
		if err != nil {
			return a, false, started || len(line) > 0, err
		}
		started = true
		proto, rest, ok := bytes.Cut(line, []byte(" "))
		code := statusCode(rest)
		if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || code < 100 {
			return a, false, true, fmt.Errorf("%w: status line %q", errMalformed, truncate(string(line), 100))
		}
		close10 = string(proto) == "HTTP/1.0"
		contentLength, chunked, keep = -1, false, !close10
		for {
			h, err := readLine(br, &headBytes)
			if err != nil {
				return a, false, true, err
			}
			if len(h) == 0 {
				break
			}
			rawName, rawValue, ok := bytes.Cut(h, []byte(":"))
			if !ok {
				return a, false, true, fmt.Errorf("%w: header line %q", errMalformed, truncate(string(h), 100))
			}
			// Only the few headers read are made strings: the rest of the
			// head costs no allocation.
			name, value := bytes.TrimSpace(rawName), bytes.TrimSpace(rawValue)
			switch {
			case asciiEqualFold(name, "content-length"):
				n := decimal(value)
				if n < 0 || (contentLength >= 0 && n != contentLength) {
					return a, false, true, fmt.Errorf("%w: Content-Length %q", errMalformed, truncate(string(value), 40))
				}
				contentLength = n
			case asciiEqualFold(name, "transfer-encoding"):
				v := string(value)
				chunked = strings.EqualFold(v, "chunked") || strings.HasSuffix(strings.ToLower(v), ", chunked")
				if !chunked {
					return a, false, true, fmt.Errorf("%w: Transfer-Encoding %q", errMalformed, truncate(v, 40))
				}
			case asciiEqualFold(name, "connection"):
				for _, tok := range strings.Split(string(value), ",") {
					switch strings.ToLower(strings.TrimSpace(tok)) {
					case "close":
						keep = false
					case "keep-alive":
						keep = keep || close10
					}
				}
			case asciiEqualFold(name, "retry-after"):
				a.retryAfter = string(value)
			}
		}
		// 1xx answers are interim (101 would switch protocols: never asked for).
		if code >= 200 || code == 101 {
			a.status = code
			break
		}
	}
	if a.status == 101 {
		return a, false, true, fmt.Errorf("%w: 101 Switching Protocols to a POST", errMalformed)
	}
	if a.status == 204 || a.status == 304 {
		return a, keep, true, nil
	}
	var body io.Reader
	var sized *io.LimitedReader
	switch {
	case chunked:
		body = httputil.NewChunkedReader(br)
	case contentLength >= 0:
		sized = &io.LimitedReader{R: br, N: contentLength}
		body = sized
	default:
		body, keep = br, false // delimited by the connection's end
	}
	a.snippet = snippet(body, limit)
	_, err = io.CopyN(io.Discard, body, drainLimit)
	switch {
	case err == io.EOF && chunked:
		// The trailer section ends the body.
		for {
			h, err := readLine(br, &headBytes)
			if err != nil {
				return a, false, true, nil
			}
			if len(h) == 0 {
				break
			}
		}
	case err == io.EOF && sized != nil && sized.N > 0:
		keep = false // the server sent less than it announced
	case err == io.EOF:
		// The whole body was read.
	default:
		// Cut short (the status stands), or too much left to read: a new
		// connection is cheaper than reading it.
		keep = false
	}
	return a, keep, true, nil
}

// maxHead bounds a response's status line and headers together.
const maxHead = 1 << 20

// readLine reads one header or status line without its CRLF. The line
// points into br's buffer: it is valid only until the next read from br. A
// line longer than the buffer is cut there (its rest is read and dropped:
// no header walhook reads is that long); n counts the head's bytes against
// maxHead.
func readLine(br *bufio.Reader, n *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	*n += len(line)
	if err == bufio.ErrBufferFull {
		kept := bytes.Clone(line)
		for err == bufio.ErrBufferFull && *n <= maxHead {
			line, err = br.ReadSlice('\n')
			*n += len(line)
		}
		if err == nil {
			line = kept
		}
	}
	if *n > maxHead {
		return nil, fmt.Errorf("%w: head longer than %d bytes", errMalformed, maxHead)
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return line, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// statusCode parses the three digits that start a status line's rest, or
// returns -1.
func statusCode(rest []byte) int {
	if len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' {
		return -1
	}
	code := 0
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return -1
		}
		code = code*10 + int(c-'0')
	}
	return code
}

// decimal parses a non-negative decimal number of at most 18 digits, or
// returns -1.
func decimal(b []byte) int64 {
	if len(b) == 0 || len(b) > 18 {
		return -1
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// asciiEqualFold reports whether b is lower, ignoring ASCII case; lower is
// lower case.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// snippet keeps the first limit characters of a body, as valid UTF-8.
func snippet(r io.Reader, limit int) string {
	buf, _ := io.ReadAll(io.LimitReader(r, int64(limit)*utf8.UTFMax))
	s := strings.ToValidUTF8(string(buf), "\uFFFD")
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit])
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// isReset reports a connection the server closed.
func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
