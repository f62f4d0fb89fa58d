// Package proxy owns everything on walhook's listen address that is not
// walhook's own: requests outside the API prefix are reverse-proxied, as they
// are, to the application walhook is deployed in front of (proxy.upstream).
//
// Invariants:
//
//   - Routing is decided once, in [Mount], exactly as [http.ServeMux] would
//     decide it (cleaned escaped path, segment by segment), so a path cannot
//     be read as "walhook's" by Mount and as "the app's" by the handler that
//     serves it, or the other way round.
//   - The own handler only ever sees canonical paths under the prefix; a
//     non-canonical spelling of one (/x/../webhooks/api) is redirected to its
//     canonical form, never served.
//   - Everything else reaches the upstream unchanged: method, raw path, raw
//     query, end-to-end headers (Authorization and Cookie included: they are
//     the app's), the Host header, and the body as a stream. Only hop-by-hop
//     headers change, X-Forwarded-For/-Proto/-Host are set, and Forwarded is
//     dropped (walhook does not speak RFC 7239).
//   - Nothing is buffered in either direction: request bodies are streamed,
//     and every response write is flushed to the client at once, so chunked
//     responses, server-sent events and upgraded connections (websockets)
//     behave as if the app were reached directly.
//   - Request bodies, queries, Authorization and Cookie are never logged.
package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
)

// Options configure the proxy.
type Options struct {
	// Upstream is the application's base URL, e.g. http://127.0.0.1:3000.
	// A path in it is prepended to every forwarded path. Nil: nothing is
	// proxied and every request is answered 404.
	Upstream *url.URL
	// TrustedProxies are the peers (typically a load balancer in front of
	// walhook) whose X-Forwarded-For/-Proto/-Host are believed and extended.
	// Requests from any other peer have their forwarding headers replaced.
	TrustedProxies []netip.Prefix
	// Transport reaches the upstream. Nil: a clone of
	// http.DefaultTransport without environment proxies and without
	// transparent compression.
	Transport http.RoundTripper
	// Logger gets upstream failures; nil discards them.
	Logger *slog.Logger
}

// New returns the reverse proxy to opts.Upstream.
func New(opts Options) (http.Handler, error) {
	if opts.Upstream == nil {
		return http.HandlerFunc(notFound), nil
	}
	if err := validUpstream(opts.Upstream); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// HTTP_PROXY is meant for walhook's outbound webhooks, not for the
		// app sitting next to it.
		t.Proxy = nil
		// Otherwise the transport would add Accept-Encoding: gzip the client
		// never sent and decompress behind the app's back, changing headers
		// and holding back streamed bytes in the gzip reader.
		t.DisableCompression = true
		// All traffic goes to one host; the default of 2 idle connections
		// per host would open and close a connection per concurrent request.
		t.MaxIdleConnsPerHost = t.MaxIdleConns
		tr = t
	}
	up := *opts.Upstream
	p := &proxy{upstream: &up, trusted: opts.TrustedProxies, log: log}
	return &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: tr,
		// Flush after every write, whatever the response's framing. The
		// stdlib already does so for SSE and unknown lengths; -1 also covers
		// apps that set Content-Length and then dribble the body out.
		FlushInterval: -1,
		ErrorHandler:  p.fail,
		// ReverseProxy's own complaints (e.g. a body copy error) would
		// otherwise go to the global log package.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, nil
}

func validUpstream(u *url.URL) error {
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("proxy upstream %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("proxy upstream %q: host is missing", u.Redacted())
	case u.User != nil:
		return fmt.Errorf("proxy upstream %q: credentials in the URL are not forwarded; remove them", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("proxy upstream %q: must have no query or fragment", u.Redacted())
	}
	return nil
}

type proxy struct {
	upstream *url.URL
	trusted  []netip.Prefix
	log      *slog.Logger
}

func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	// Keep the Host the client asked for: an app behind a sidecar builds
	// absolute URLs, cookie domains, CSRF origin checks and virtual hosts
	// from it, and must not see 127.0.0.1:3000 instead. X-Forwarded-Host
	// carries the same value for apps that look there.
	pr.Out.Host = pr.In.Host
	// ReverseProxy drops query parameters it cannot parse (a=1;b=2) to
	// prevent smuggling past a proxy that reads the query. walhook never
	// reads it, so there is nothing to smuggle past; the app gets it as sent.
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery

	// ReverseProxy has removed the client's forwarding headers. A trusted
	// peer's are restored, so the app sees the whole chain (client, load
	// balancer, …) and the scheme the client really used; anyone else could
	// forge them, so theirs stay dropped. X-Forwarded-For always ends with
	// the peer walhook saw: apps read the chain from the right, as usual.
	trusted := p.fromTrusted(pr.In)
	if trusted {
		pr.Out.Header["X-Forwarded-For"] = slices.Clone(pr.In.Header["X-Forwarded-For"])
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := pr.In.Header[h]; len(v) > 0 {
				pr.Out.Header[h] = slices.Clone(v)
			}
		}
	}
}

func (p *proxy) fromTrusted(r *http.Request) bool {
	if len(p.trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// fail answers requests the upstream did not answer. ReverseProxy calls it
// only before anything was written to the client (or after a hijack, when
// the write below goes nowhere).
func (p *proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	// A custom Transport (or http.Client-style wrapping) may put the full
	// URL, query included, into the error; the query can carry secrets.
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	level := slog.LevelWarn
	if r.Context().Err() != nil {
		// The client went away; nothing is wrong with the upstream.
		level = slog.LevelDebug
	}
	p.log.Log(r.Context(), level, "proxy: upstream request failed",
		"method", r.Method, "path", r.URL.Path, "upstream", p.upstream.Host, "err", err)
	writeError(w, http.StatusBadGateway, "upstream unavailable")
}

// notFound answers requests outside the prefix when there is no upstream.
func notFound(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "no such route")
}

type errorBody struct {
	Error struct {
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	var b errorBody
	b.Error.Message = msg
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(b)
}
