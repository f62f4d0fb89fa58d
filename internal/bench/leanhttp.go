package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/walhook/walhook/internal/signature"
)

// Receiver servers: which HTTP server the receivers run.
const (
	// ServerLean is leanServer: a minimal HTTP/1.1 server, so that the
	// instrument takes less of the machine it shares with what it measures.
	ServerLean = "lean"
	// ServerNetHTTP is net/http's server, what most Go receivers run.
	ServerNetHTTP = "net/http"
)

// leanServer serves a receiver with the least HTTP/1.1 a webhook sender
// needs: requests with a Content-Length body (walhook and the raw ceiling's
// client always send one), keep-alive, and one answer per request without a
// body. net/http's server costs about 15 allocations and a header map per
// request; on two shared cores that CPU is taken from walhook and Postgres,
// not from a receiver on another machine, which is what a real endpoint is.
// Anything else (chunked bodies, Expect, pipelining beyond reading requests
// in order) gets 400 or 501 and the connection is closed: it would be a bug
// in the sender this bench measures, so it must show, not be tolerated.
type leanServer struct {
	ln net.Listener
	rc *receiver

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func serveLean(ln net.Listener, rc *receiver) *leanServer {
	s := &leanServer{ln: ln, rc: rc, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s
}

func (s *leanServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Temporary (out of file descriptors, say): a receiver that
			// stopped accepting would stall the run without a word.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// close stops accepting, closes every connection (which also releases
// handlers waiting on a hanging request) and waits for their goroutines.
func (s *leanServer) close() {
	s.mu.Lock()
	s.closed = true
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

var (
	answerNoContent = []byte("HTTP/1.1 204 No Content\r\n\r\n")
	answerFailed    = []byte("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
	answerBad       = []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	answerNotImpl   = []byte("HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
)

// leanHead is what serve keeps of a request's head.
type leanHead struct {
	contentLength int64
	close         bool // Connection: close, or HTTP/1.0
	raw           bool // the raw ceiling's request (rawHeader)
	chunked       bool
	id, ts, sig   string
}

// errBadRequest: the head cannot be read as HTTP/1.1.
var errBadRequest = errors.New("bad request")

// serve answers c's requests in order until it closes or fails.
func (s *leanServer) serve(c net.Conn) {
	rc := s.rc
	br := bufio.NewReaderSize(c, 16<<10)
	// The signature headers, in the form signature.Verifier reads; the
	// slices are reused, only their strings are new per request.
	vals := [3][]string{make([]string, 1), make([]string, 1), make([]string, 1)}
	h := http.Header{signature.HeaderID: vals[0], signature.HeaderTimestamp: vals[1], signature.HeaderSignature: vals[2]}
	var body []byte
	for {
		head, err := readLeanHead(br)
		switch {
		case errors.Is(err, errBadRequest):
			rc.countUnparsable()
			_, _ = c.Write(answerBad)
			return
		case err != nil:
			return // closed, or gone mid-head
		case head.chunked:
			rc.countUnparsable()
			_, _ = c.Write(answerNotImpl)
			return
		}
		if head.contentLength > 16<<20 {
			rc.countUnparsable()
			_, _ = c.Write(answerBad)
			return
		}
		n := int(head.contentLength)
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		at := rc.opts.Clock.now()
		vals[0][0], vals[1][0], vals[2][0] = head.id, head.ts, head.sig
		status, wait := rc.handle(head.raw, h, body, at)
		if wait < 0 {
			// Never answered: held until the sender gives up and closes
			// (the read returns), or the server closes the connection.
			_, _ = br.Peek(1)
			return
		}
		if !rc.wait(nil, wait) || status == 0 {
			return
		}
		answer := answerNoContent
		if status != http.StatusNoContent {
			answer = answerFailed
		}
		if _, err := c.Write(answer); err != nil || head.close {
			return
		}
	}
}

// Header names serve looks at, compared without regard to case.
var (
	hdrContentLength    = []byte("Content-Length")
	hdrTransferEncoding = []byte("Transfer-Encoding")
	hdrConnection       = []byte("Connection")
	hdrExpect           = []byte("Expect")
	hdrID               = []byte(signature.HeaderID)
	hdrTimestamp        = []byte(signature.HeaderTimestamp)
	hdrSignature        = []byte(signature.HeaderSignature)
	hdrRaw              = []byte(rawHeader)
)

// readLeanHead reads a request line and its header fields. It returns
// io.EOF (or the read's error) when the connection ends between requests,
// and errBadRequest when what came is not an HTTP/1.x request it can serve.
func readLeanHead(br *bufio.Reader) (leanHead, error) {
	head := leanHead{contentLength: -1}
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return head, fmt.Errorf("%w: request line longer than %d bytes", errBadRequest, br.Size())
	}
	if err != nil {
		return head, err // closed between requests, or gone mid-line
	}
	line = bytes.TrimRight(line, "\r\n")
	_, version, ok := bytes.Cut(line, []byte(" "))
	if ok {
		_, version, ok = bytes.Cut(version, []byte(" "))
	}
	switch {
	case !ok:
		return head, fmt.Errorf("%w: request line %q", errBadRequest, line)
	case string(version) == "HTTP/1.0":
		head.close = true
	case string(version) != "HTTP/1.1":
		return head, fmt.Errorf("%w: version %q", errBadRequest, version)
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A header line longer than the buffer is not a webhook's.
			return head, fmt.Errorf("%w: header line longer than %d bytes", errBadRequest, br.Size())
		}
		if err != nil {
			return head, err // gone mid-head
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return head, fmt.Errorf("%w: header line %q", errBadRequest, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, hdrContentLength):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return head, fmt.Errorf("%w: Content-Length %q", errBadRequest, value)
			}
			head.contentLength = n
		case bytes.EqualFold(name, hdrTransferEncoding):
			head.chunked = true // any coding: serve has none
		case bytes.EqualFold(name, hdrExpect):
			head.chunked = true // 100-continue is not sent by the clients measured
		case bytes.EqualFold(name, hdrConnection):
			head.close = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, hdrID):
			head.id = string(value)
		case bytes.EqualFold(name, hdrTimestamp):
			head.ts = string(value)
		case bytes.EqualFold(name, hdrSignature):
			head.sig = string(value)
		case bytes.EqualFold(name, hdrRaw):
			head.raw = len(value) > 0
		}
	}
	if head.contentLength < 0 && !head.chunked {
		head.contentLength = 0 // a request without a body
	}
	return head, nil
}
