package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ForwardOptions configure forward authentication.
type ForwardOptions struct {
	// URL is the app's auth route.
	URL string
	// TenantHeader names the tenant in the app's 2xx answer.
	TenantHeader string
	// CacheTTL is how long an answer is reused for the same Cookie and
	// Authorization headers; 0: never.
	CacheTTL time.Duration
	// Timeout bounds one request to URL.
	Timeout time.Duration
	// Client sends the requests; nil: a client without proxy that does not
	// follow redirects.
	Client *http.Client
	Now    func() time.Time
	Logger *slog.Logger
}

// maxCached bounds the answer cache; when it is full and nothing has
// expired, it is emptied (answers are cheap to ask for again).
const maxCached = 10000

// Forward asks the app who the caller is (auth.mode forward).
//
// The request to the app is a GET of URL carrying only the original
// request's Cookie and Authorization headers (nothing else of the original
// request: the answer must depend on the credentials alone, since it is
// cached by them). The answer decides:
//
//	2xx with a non-empty tenant header → admitted for that tenant
//	2xx without it, or 403             → 403
//	any other status                   → 401
//	no answer (unreachable, timeout)   → 503, not cached
//
// 5xx answers are not cached either. Redirects are not followed (a login
// redirect is a 401).
type Forward struct {
	opts   ForwardOptions
	client *http.Client
	log    *slog.Logger

	mu    sync.Mutex
	cache map[[32]byte]answer
}

type answer struct {
	p       Principal
	err     *Error
	expires time.Time
}

// NewForward builds forward authentication.
func NewForward(o ForwardOptions) (*Forward, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth.forward_url: %q is not an http(s) URL", o.URL)
	}
	if o.TenantHeader == "" {
		o.TenantHeader = "X-Walhook-Tenant"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := o.Client
	if c == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // the app is beside walhook; an environment proxy must not see its callers' cookies
		c = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Forward{opts: o, client: c, log: o.Logger, cache: map[[32]byte]answer{}}, nil
}

var errNoCredentials = &Error{Status: http.StatusUnauthorized, Message: "sign in to the app first: the request has no Cookie or Authorization header"}

// Authenticate implements Authenticator.
func (f *Forward) Authenticate(r *http.Request) (Principal, error) {
	cookie := strings.Join(r.Header.Values("Cookie"), "; ")
	authz := r.Header.Get("Authorization")
	if cookie == "" && authz == "" {
		return Principal{}, errNoCredentials
	}
	key := sha256.Sum256([]byte(cookie + "\x00" + authz))
	now := f.opts.Now()
	if f.opts.CacheTTL > 0 {
		f.mu.Lock()
		a, ok := f.cache[key]
		f.mu.Unlock()
		if ok && now.Before(a.expires) {
			return a.result()
		}
	}
	a, cache := f.ask(r.Context(), cookie, authz)
	if cache && f.opts.CacheTTL > 0 {
		a.expires = now.Add(f.opts.CacheTTL)
		f.mu.Lock()
		if len(f.cache) >= maxCached {
			for k, v := range f.cache {
				if !now.Before(v.expires) {
					delete(f.cache, k)
				}
			}
			if len(f.cache) >= maxCached {
				clear(f.cache)
			}
		}
		f.cache[key] = a
		f.mu.Unlock()
	}
	return a.result()
}

func (a answer) result() (Principal, error) {
	if a.err != nil {
		return Principal{}, a.err
	}
	return a.p, nil
}

// ask sends the credentials to the app; cache says whether the answer may
// be reused.
func (f *Forward) ask(ctx context.Context, cookie, authz string) (a answer, cache bool) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.opts.URL, nil)
	if err != nil {
		return answer{err: &Error{Status: http.StatusServiceUnavailable, Message: "auth.forward_url is unusable"}}, false
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("User-Agent", "walhook-auth")
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
			// The caller went away; nothing to report to the operator.
			return answer{err: &Error{Status: http.StatusServiceUnavailable, Message: "request cancelled"}}, false
		}
		f.log.Warn("forward auth: the app's auth route did not answer", "url", f.opts.URL, "err", describe(err))
		return answer{err: &Error{Status: http.StatusServiceUnavailable, Message: "the app's auth route (auth.forward_url) did not answer"}}, false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		tenant := strings.TrimSpace(resp.Header.Get(f.opts.TenantHeader))
		if tenant == "" {
			return answer{err: &Error{Status: http.StatusForbidden,
				Message: "the app admitted the caller but named no tenant (" + f.opts.TenantHeader + ")"}}, true
		}
		return answer{p: Principal{Tenant: tenant}}, true
	case code == http.StatusForbidden:
		return answer{err: &Error{Status: http.StatusForbidden, Message: "the app refused the caller"}}, true
	case code >= 500:
		f.log.Warn("forward auth: the app's auth route failed", "url", f.opts.URL, "status", code)
		return answer{err: &Error{Status: http.StatusUnauthorized, Message: fmt.Sprintf("the app's auth route answered %d", code)}}, false
	default:
		return answer{err: &Error{Status: http.StatusUnauthorized, Message: "the app did not recognise the caller"}}, true
	}
}

// describe drops the URL from a client error (the operator knows it, and
// it is logged beside).
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
