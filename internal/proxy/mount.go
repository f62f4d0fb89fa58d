package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Mount returns the handler for walhook's listen address: requests for
// prefix (e.g. "/webhooks/") itself, for prefix without its trailing slash,
// and for anything below it go to own; every other request goes to proxy.
// A nil proxy answers those with a 404 JSON error.
//
// The decision follows http.ServeMux: the escaped path is cleaned ("." and
// ".." segments applied, "//" collapsed), then compared segment by segment
// after unescaping each segment. So /webhooksX and /webhooks/../admin are the
// app's, /x/../webhooks/api is walhook's, and /webhooks%2Fapi is the app's
// (an escaped slash is not a separator), which is also how the ServeMux
// inside own reads them. Requests for the app are forwarded with the path as
// received: cleaning it is the app's business.
//
// Handlers get the ResponseWriter as the server gave it, so flushing and
// hijacking (websockets) keep working through Mount.
//
// Mount panics if prefix does not start with "/" or is not in canonical form,
// as ServeMux does for a bad pattern: it is a configuration bug.
func Mount(prefix string, own, proxy http.Handler) http.Handler {
	base := strings.TrimSuffix(prefix, "/")
	if !strings.HasPrefix(prefix, "/") || (base != "" && path.Clean(base) != base) {
		panic(fmt.Sprintf("proxy: prefix %q must be an absolute, clean path such as /webhooks/", prefix))
	}
	if own == nil {
		panic("proxy: Mount needs walhook's own handler")
	}
	var segs []string
	if base != "" {
		segs = strings.Split(base[1:], "/")
	}
	if proxy == nil {
		proxy = http.HandlerFunc(notFound)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		escaped := r.URL.EscapedPath()
		clean := cleanPath(escaped)
		if !under(segs, clean) {
			proxy.ServeHTTP(w, r)
			return
		}
		if clean != escaped {
			// As ServeMux would: 307 keeps the method and body. clean starts
			// with a single "/", so Location stays on this origin.
			loc := clean
			if r.URL.RawQuery != "" {
				loc += "?" + r.URL.RawQuery
			}
			w.Header().Set("Location", loc)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		own.ServeHTTP(w, r)
	})
}

// under reports whether the clean, escaped path p is the path made of segs
// or lies below it.
func under(segs []string, p string) bool {
	// Prefix segments are never empty (Mount checks the prefix is clean),
	// so a path shorter than the prefix fails on the empty rest.
	rest := p[1:]
	for _, s := range segs {
		seg, tail, _ := strings.Cut(rest, "/")
		if u, err := url.PathUnescape(seg); err != nil || u != s {
			return false
		}
		rest = tail
	}
	return true
}

// cleanPath is http.ServeMux's canonical form of a path: path.Clean, with a
// trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}
